from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ranvier import CompletionState, ForkOrigin, TraceStart, rules
from ranvier.ops.stores import count_traces
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import ADAPTERS, Cli, Target, assert_one_line_error, make_target, run
from tests.cli.traces import make_trace


def _seed(target: Target, count: int = 20) -> None:
    async def work(store: PersistenceStore) -> None:
        for i in range(count):
            completion = CompletionState.SUCCESS if i % 2 else None
            trace = make_trace(f"bk-{i:03d}", completion=completion, superseded=i % 3 == 0,
                               interventions=i % 4 == 0)  # fmt: skip
            await store.import_trace(trace)

    target.with_store(work)


def _digests(target: Target) -> dict[str, str]:
    async def work(store: PersistenceStore) -> dict[str, str]:
        found = {}
        page = await store.list_traces(limit=1000)
        for summary in page.items:
            trace = await store.load(summary.trace_id)
            assert trace is not None
            found[trace.trace_id] = rules.trace_digest(trace)
        return found

    return target.with_store(work)


def test_backup_restore_verify_round_trip(cli: Cli, target: Target, tmp_path: Path) -> None:
    _seed(target)
    file = tmp_path / "ranvier.jsonl.gz"
    made = cli(target, "backup", "--out", str(file), "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["traces"] == 20
    other = make_target("sqlite", tmp_path, "restored")
    restored = cli(other, "restore", "--in", str(file), "--json")
    assert restored.exit_code == 0, restored.output
    assert json.loads(restored.stdout)["written"] == 20
    assert _digests(other) == _digests(target)
    again = cli(other, "restore", "--in", str(file), "--json")
    assert (json.loads(again.stdout)["written"], json.loads(again.stdout)["skipped"]) == (0, 20)
    verified = cli(other, "verify", str(file), "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.stdout)["ok"] is True


def test_verify_without_a_store_checks_the_file(cli: Cli, target: Target, tmp_path: Path) -> None:
    _seed(target, 5)
    file = tmp_path / "b.gz"
    assert cli(target, "backup", "--out", str(file)).exit_code == 0
    result = cli(None, "verify", str(file))
    assert result.exit_code == 0, result.output
    assert "ok: 5 trace(s)" in result.stdout


def test_verify_reports_missing_and_different_traces(
    cli: Cli, target: Target, tmp_path: Path
) -> None:
    _seed(target, 6)
    file = tmp_path / "b.gz"
    assert cli(target, "backup", "--out", str(file)).exit_code == 0

    async def drift(store: PersistenceStore) -> None:
        await store.delete("bk-000")
        await store.complete("bk-002", CompletionState.CANCELLED)

    target.with_store(drift)
    result = cli(target, "verify", str(file), "--store", target.url, "--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert (report["ok"], report["missing"], report["different"]) == (False, ["bk-000"], ["bk-002"])


def _first(lines: list[bytes], old: bytes, new: bytes) -> list[bytes]:
    """Replace `old` in the first line holding it (trace order depends on the adapter)."""
    index = next(i for i, line in enumerate(lines) if old in line)
    return [*lines[:index], lines[index].replace(old, new), *lines[index + 1 :]]


def _rewrite(file: Path, edit: object) -> None:
    lines = gzip.decompress(file.read_bytes()).splitlines(keepends=True)
    assert callable(edit)
    file.write_bytes(gzip.compress(b"".join(edit(lines))))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda lines: lines[:-1], "truncated"),
        (lambda lines: [lines[0], *lines[2:]], "footer counts"),
        (lambda lines: _first(lines, b'"resumed_from_step":1', b'"resumed_from_step":0'), "digest"),
        (lambda lines: _first(lines, b'"pad"', b'"pat"'), "payload_hash"),
        (lambda lines: [b"{nonsense\n", *lines[1:]], "not JSON"),
    ],
)
def test_restore_refuses_a_damaged_file_and_writes_nothing(
    cli: Cli, target: Target, tmp_path: Path, damage: object, message: str
) -> None:
    _seed(target, 4)
    file = tmp_path / "b.gz"
    assert cli(target, "backup", "--out", str(file)).exit_code == 0
    _rewrite(file, damage)
    other = make_target("sqlite", tmp_path, "fresh")
    assert_one_line_error(cli(other, "restore", "--in", str(file)), 6, message)
    assert other.with_store(count_traces) == 0
    assert_one_line_error(cli(None, "verify", str(file)), 6, message)


def test_restore_of_a_cut_gzip_stream_is_reported(cli: Cli, target: Target, tmp_path: Path) -> None:
    _seed(target, 30)
    file = tmp_path / "b.gz"
    assert cli(target, "backup", "--out", str(file)).exit_code == 0
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    other = make_target("sqlite", tmp_path, "fresh")
    assert_one_line_error(cli(other, "restore", "--in", str(file)), 6, "truncated")
    assert other.with_store(count_traces) == 0


def test_restore_never_overwrites_a_different_trace(
    cli: Cli, target: Target, tmp_path: Path
) -> None:
    _seed(target, 4)
    file = tmp_path / "b.gz"
    assert cli(target, "backup", "--out", str(file)).exit_code == 0
    other = make_target("sqlite", tmp_path, "conflicting")

    async def clash(store: PersistenceStore) -> None:
        await store.import_trace(make_trace("bk-003", steps=1))

    other.with_store(clash)
    assert_one_line_error(cli(other, "restore", "--in", str(file)), 4, "bk-003")
    assert other.with_store(count_traces) == 1  # nothing else written either


def test_restore_of_a_missing_file_is_bad_input(cli: Cli, target: Target, tmp_path: Path) -> None:
    assert_one_line_error(cli(target, "restore", "--in", str(tmp_path / "none.gz")), 2, "none.gz")


def test_a_failed_backup_leaves_no_file(cli: Cli, tmp_path: Path) -> None:
    result = cli(
        None,
        "backup",
        "--out",
        str(tmp_path / "b.gz"),
        "--store",
        "postgresql://nobody@127.0.0.1:1/x",
    )
    assert result.exit_code == 3
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ten_thousand_traces_move_between_adapters(cli: Cli, tmp_path: Path) -> None:
    """SQLite -> PostgreSQL when present (else another SQLite file), verify passing."""
    source = make_target("sqlite", tmp_path, "source")

    async def fill(store: PersistenceStore) -> None:
        for start in range(0, 10_000, 50):
            await _import_many(store, start, 50)

    source.with_store(fill)
    file = tmp_path / "ten-thousand.jsonl.gz"
    made = cli(source, "backup", "--out", str(file), "--json")
    assert made.exit_code == 0, made.output
    destination = make_target("postgres" if "postgres" in ADAPTERS else "sqlite", tmp_path, "dest")
    try:
        restored = cli(destination, "restore", "--in", str(file), "--json")
        assert restored.exit_code == 0, restored.output
        assert json.loads(restored.stdout)["written"] == 10_000
        verified = cli(destination, "verify", str(file), "--store", destination.url, "--json")
        assert verified.exit_code == 0, verified.output
        assert json.loads(verified.stdout)["matched"] == 10_000
    finally:
        if destination.cleanup is not None:
            run(destination.cleanup())


async def _import_many(store: PersistenceStore, start: int, count: int) -> None:
    import asyncio

    traces = [
        make_trace(
            f"tt-{i:06d}", steps=1 + i % 4, completion=CompletionState.SUCCESS if i % 3 else None
        )
        for i in range(start, start + count)
    ]
    await asyncio.gather(*(store.import_trace(t) for t in traces))


def test_backup_and_restore_keep_input_attempts_and_fork_origin(
    cli: Cli, target: Target, tmp_path: Path
) -> None:
    start = TraceStart(circuit="orders", schematic_version="1", input={"qty": 2, "é": [1.5]})
    forked = replace(
        make_trace("bk-forked"), input={"qty": 1}, attempts=3,
        forked_from=ForkOrigin(trace_id="bk-source", step=2),
    )  # fmt: skip

    async def work(store: PersistenceStore) -> None:
        lease = await store.acquire_lease("bk-started", "w", 60_000, start=start)
        assert lease is not None
        await store.import_trace(forked)

    target.with_store(work)
    file = tmp_path / "start.jsonl.gz"
    assert cli(target, "backup", "--out", str(file)).exit_code == 0
    other = make_target("sqlite", tmp_path, "restored-start")
    assert cli(other, "restore", "--in", str(file)).exit_code == 0

    async def loaded(store: PersistenceStore) -> list[Any]:
        return [await store.load("bk-started"), await store.load("bk-forked")]

    started, again = other.with_store(loaded)
    assert started is not None and (started.input, started.attempts) == (start.input, 1)
    assert again is not None and (again.input, again.attempts) == ({"qty": 1}, 3)
    assert again.forked_from == ForkOrigin(trace_id="bk-source", step=2)
    assert _digests(other) == _digests(target)
