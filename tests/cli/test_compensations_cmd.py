"""`ranvier compensations list|release|retry` (issue 14, item 1)."""

from __future__ import annotations

import json

from ranvier import CompensationState, CompletionState, PersistenceEnvelope
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Cli, Target


def _faulted_with_a_failed_hook(cli: Cli, target: Target, trace_id: str) -> None:
    async def work(store: PersistenceStore) -> None:
        await store.append(
            PersistenceEnvelope(
                trace_id=trace_id, circuit="cli-hook", schematic_version="1.0", step=0,
                node_id="validate", payload={"id": trace_id},
            )
        )  # fmt: skip

    target.with_store(work)
    result = cli(target, "resume", trace_id, "--app", "tests.cli.pipelines:broken")
    assert result.exit_code == 7, result.output


def test_list_shows_the_claim_left_by_a_failed_hook(cli: Cli, target: Target) -> None:
    _faulted_with_a_failed_hook(cli, target, "comp-1")
    listed = cli(target, "compensations", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["key"], r["state"]) for r in rows] == [("comp-1:cli-hook:KeyError", "claimed")]
    table = cli(target, "compensations", "list")
    assert "comp-1:cli-hook:KeyError" in table.stdout and "1 unfinished claim(s)" in table.stdout


def test_retry_runs_the_fixed_hook_once_and_completes_compensated(cli: Cli, target: Target) -> None:
    _faulted_with_a_failed_hook(cli, target, "comp-2")
    result = cli(target, "compensations", "retry", "comp-2", "--app",
                 "tests.cli.pipelines:hook_fixed", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["released"], report["result"]) == (True, "compensated")

    async def state(store: PersistenceStore) -> tuple[object, object]:
        trace = await store.load("comp-2")
        record = await store.compensations.get("comp-2:cli-hook:KeyError")
        assert trace is not None and record is not None
        return trace.completion, record.state

    assert target.with_store(state) == (CompletionState.COMPENSATED, CompensationState.COMPENSATED)
    again = cli(target, "compensations", "list", "--json")
    assert again.stdout.strip() == ""


def test_release_drops_a_claim_and_refuses_an_unknown_key(cli: Cli, target: Target) -> None:
    _faulted_with_a_failed_hook(cli, target, "comp-3")
    released = cli(target, "compensations", "release", "comp-3:cli-hook:KeyError", "--json")
    assert released.exit_code == 0 and json.loads(released.stdout)["released"] is True
    missing = cli(target, "compensations", "release", "comp-3:cli-hook:KeyError")
    assert missing.exit_code == 5 and "no unfinished claim" in missing.stdout
