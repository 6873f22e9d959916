"""`ranvier resume|fork|traces` on failing runs: exit codes, tracebacks, fork (issue 12)."""

from __future__ import annotations

import json

from ranvier import CompletionState, ForkOrigin, PersistenceEnvelope
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Cli, Target

BROKEN = "tests.cli.pipelines:broken"
FIXED = "tests.cli.pipelines:fixed"


def _interrupt(target: Target, trace_id: str, circuit: str = "cli-faulty") -> None:
    async def work(store: PersistenceStore) -> None:
        await store.append(
            PersistenceEnvelope(
                trace_id=trace_id, circuit=circuit, schematic_version="1.0", step=0,
                node_id="validate", payload={"id": trace_id},
            )
        )  # fmt: skip

    target.with_store(work)


def test_resume_of_a_run_that_faults_exits_7_and_says_why(cli: Cli, target: Target) -> None:
    _interrupt(target, "will-fault")
    result = cli(target, "resume", "will-fault", "--app", BROKEN, "--json")
    assert result.exit_code == 7, result.output
    report = json.loads(result.stdout)
    assert (report["completion"], report["exit_code"]) == ("fault", 7)
    assert report["fault"] == {"kind": "KeyError", "message": "'size'"}


def test_show_prints_the_input_and_the_traceback_of_a_fault(cli: Cli, target: Target) -> None:
    _interrupt(target, "shown")
    cli(target, "resume", "shown", "--app", BROKEN)
    result = cli(target, "traces", "show", "shown")
    assert result.exit_code == 0, result.output
    assert "fault at step 1 (pack): KeyError: 'size'" in result.stdout
    assert "Traceback (most recent call last)" in result.stdout
    assert 'order["size"]' in result.stdout
    assert "input: null" in result.stdout and "attempts 1" in result.stdout


def test_a_failed_compensation_is_marked_in_list_and_show(cli: Cli, target: Target) -> None:
    _interrupt(target, "hook-fails", circuit="cli-hook")
    assert cli(target, "resume", "hook-fails", "--app", BROKEN).exit_code == 7
    listed = cli(target, "traces", "list", "--circuit", "cli-hook", "--json")
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["trace_id"], r["status"], r["note"]) for r in rows] == [
        ("hook-fails", "faulted", "compensation failed")
    ]
    table = cli(target, "traces", "list", "--circuit", "cli-hook")
    assert "faulted (compensation failed)" in table.stdout
    shown = cli(target, "traces", "show", "hook-fails")
    assert "status faulted (compensation failed)" in shown.stdout
    assert "(compensation hook): compensation_failed" in shown.stdout
    assert "RuntimeError: refund service down" in shown.stdout


def test_fork_after_a_fix_runs_from_the_failed_step_and_leaves_the_source(
    cli: Cli, target: Target
) -> None:
    _interrupt(target, "to-fork")
    cli(target, "resume", "to-fork", "--app", BROKEN)
    before = json.loads(cli(target, "traces", "show", "to-fork", "--json").stdout)
    result = cli(target, "fork", "to-fork", "--at", "pack", "--app", FIXED, "--new-id",
                 "forked-1", "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["trace_id"], report["completion"], report["steps_run"]) == (
        "forked-1",
        "success",
        2,
    )
    assert report["value"] == {"id": "to-fork", "box": "M", "shipped": True}
    after = json.loads(cli(target, "traces", "show", "to-fork", "--json").stdout)
    assert after == before
    shown = cli(target, "traces", "show", "forked-1")
    assert "forked from to-fork at step 1" in shown.stdout

    async def origin(store: PersistenceStore) -> ForkOrigin | None:
        trace = await store.load("forked-1")
        assert trace is not None and trace.completion is CompletionState.SUCCESS
        return trace.forked_from

    assert target.with_store(origin) == ForkOrigin(trace_id="to-fork", step=1)


def test_fork_with_a_payload_and_bad_arguments(cli: Cli, target: Target) -> None:
    _interrupt(target, "fork-src")
    cli(target, "resume", "fork-src", "--app", BROKEN)
    result = cli(target, "fork", "fork-src", "--at", "pack", "--app", FIXED, "--payload",
                 '{"id": "given"}', "--json")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["value"]["id"] == "given"
    bad = cli(target, "fork", "fork-src", "--at", "nope", "--app", FIXED)
    assert bad.exit_code == 2 and "no step named 'nope'" in bad.output
    missing = cli(target, "fork", "no-such-trace", "--at", "pack", "--app", FIXED)
    assert missing.exit_code == 5
