from __future__ import annotations

import json

import pytest

from ranvier import CompletionState, Lease
from ranvier.cli import traces as traces_cli
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Cli, Target, assert_one_line_error
from tests.cli.traces import make_trace


def _seed(target: Target) -> None:
    async def work(store: PersistenceStore) -> None:
        now = await store.now_ms()
        await store.import_trace(make_trace("a-open", at_ms=now - 10 * 86_400_000))
        await store.import_trace(make_trace("b-open", at_ms=now - 1000))
        await store.import_trace(
            make_trace("c-done", completion=CompletionState.SUCCESS, at_ms=now - 5000)
        )
        await store.import_trace(
            make_trace("d-fault", circuit="billing", completion=CompletionState.FAULT, at_ms=now)
        )
        await store.import_trace(make_trace("e-rewound", superseded=1, interventions=1))

    target.with_store(work)


def _ids(output: str) -> list[str]:
    """The listed ids, sorted (the contract promises no order: Redis lists in SCAN order)."""
    return sorted(json.loads(line)["trace_id"] for line in output.splitlines() if line.strip())


def test_list_filters_by_status_circuit_and_age(cli: Cli, target: Target) -> None:
    _seed(target)
    assert _ids(cli(target, "traces", "list", "--json").stdout) == [
        "a-open", "b-open", "c-done", "d-fault", "e-rewound",
    ]  # fmt: skip
    interrupted = cli(target, "traces", "list", "--status", "interrupted", "--json")
    assert _ids(interrupted.stdout) == ["a-open", "b-open", "e-rewound"]
    completed = cli(target, "traces", "list", "--status", "completed", "--json")
    assert _ids(completed.stdout) == ["c-done", "d-fault"]
    assert _ids(cli(target, "traces", "list", "--status", "faulted", "--json").stdout) == [
        "d-fault"
    ]
    billing = cli(target, "traces", "list", "--circuit", "billing", "--json")
    assert _ids(billing.stdout) == ["d-fault"]
    old = cli(target, "traces", "list", "--older-than", "7d", "--json")
    assert _ids(old.stdout) == ["a-open", "e-rewound"]


def test_list_streams_pages_and_honours_limit(
    cli: Cli, target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(traces_cli, "PAGE_SIZE", 40)  # several pages from a few traces

    async def work(store: PersistenceStore) -> None:
        for i in range(203):
            await store.import_trace(make_trace(f"t{i:05d}", steps=1))

    target.with_store(work)
    everything = cli(target, "traces", "list", "--limit", "0", "--json")
    assert everything.exit_code == 0, everything.output
    assert _ids(everything.stdout) == [f"t{i:05d}" for i in range(203)]
    limited = cli(target, "traces", "list", "--limit", "47", "--json")
    assert len(_ids(limited.stdout)) == 47
    table = cli(target, "traces", "list", "--limit", "3")
    assert sum(line.startswith("t0") for line in table.stdout.splitlines()) == 3
    assert "3 trace(s) (more: raise --limit)" in table.stdout


def test_show_marks_superseded_events_and_interventions(cli: Cli, target: Target) -> None:
    _seed(target)
    result = cli(target, "traces", "show", "e-rewound")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert any("old0" in line and "superseded" in line for line in lines), result.stdout
    assert any("node0" in line and "intervention" in line for line in lines), result.stdout
    assert "interrupted" in lines[0]
    as_json = json.loads(cli(target, "traces", "show", "e-rewound", "--json").stdout)
    assert [e["node_id"] for e in as_json["superseded_events"]] == ["old0"]
    assert as_json["interventions"][0]["payload_override"] == {"fix": 0}


def test_show_reports_a_live_lease_as_running(cli: Cli, target: Target) -> None:
    _seed(target)

    async def take(store: PersistenceStore) -> Lease | None:
        return await store.acquire_lease("b-open", "worker-1", 60_000)

    assert target.with_store(take) is not None
    result = cli(target, "traces", "show", "b-open")
    assert "running" in result.stdout.splitlines()[0]
    assert "lease: worker-1" in result.stdout


def test_show_unknown_trace_is_a_one_line_error(cli: Cli, target: Target) -> None:
    assert_one_line_error(cli(target, "traces", "show", "nope"), 5, "nope")


def test_list_rejects_a_malformed_duration(cli: Cli, target: Target) -> None:
    result = cli(target, "traces", "list", "--older-than", "7 days")
    assert_one_line_error(result, 2, "7 days")
