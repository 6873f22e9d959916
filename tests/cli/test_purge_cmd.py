from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ranvier import CompletionState
from ranvier.ops import retention
from ranvier.ops.stores import count_traces
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Cli, Target, assert_one_line_error
from tests.cli.traces import DAY_MS, make_trace


def _seed(target: Target) -> None:
    async def work(store: PersistenceStore) -> None:
        now = await store.now_ms()
        done = CompletionState.SUCCESS
        await store.import_trace(make_trace("old-done", completion=done, at_ms=now - 40 * DAY_MS))
        await store.import_trace(
            make_trace("old-fault", completion=CompletionState.FAULT, at_ms=now - 31 * DAY_MS)
        )
        # completed long ago but touched since: purge goes by completed_at, so it goes too
        touched = make_trace("touched", completion=done, at_ms=now - 60 * DAY_MS)
        await store.import_trace(replace(touched, updated_at_ms=now - DAY_MS))
        await store.import_trace(
            make_trace("recent-done", completion=done, at_ms=now - 20 * DAY_MS)
        )
        await store.import_trace(make_trace("old-open", at_ms=now - 90 * DAY_MS))

    target.with_store(work)


def _remaining(target: Target) -> list[str]:
    async def work(store: PersistenceStore) -> list[str]:
        return [s.trace_id for s in (await store.list_traces(limit=100)).items]

    return target.with_store(work)


def test_dry_run_counts_exactly_what_purge_removes(cli: Cli, target: Target) -> None:
    _seed(target)
    dry = cli(target, "purge", "--older-than", "30d", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["traces"] == 3
    assert len(_remaining(target)) == 5
    real = cli(target, "purge", "--preset", "prod", "--batch", "1", "--json")
    assert real.exit_code == 0, real.output
    assert json.loads(real.stdout)["traces"] == 3
    assert sorted(_remaining(target)) == ["old-open", "recent-done"]
    human = cli(target, "purge", "--preset", "dev")
    assert "purged 1 completed trace(s)" in human.stdout
    assert _remaining(target) == ["old-open"]


def test_purge_removes_old_compensation_keys(cli: Cli, target: Target) -> None:
    async def claim(store: PersistenceStore) -> None:
        await store.compensations.mark_compensated("t1:orders:out_of_stock")

    target.with_store(claim)
    time.sleep(1.2)
    result = cli(target, "purge", "--older-than", "1s", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["compensation_keys"] == 1

    async def lookup(store: PersistenceStore) -> bool:
        return await store.compensations.get("t1:orders:out_of_stock") is None

    assert target.with_store(lookup)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--older-than", "30days"], "30days"),
        (["--older-than", "0d"], "zero"),
        (["--preset", "forever"], "forever"),
        (["--older-than", "7d", "--preset", "prod"], "not both"),
        ([], "--older-than 30d"),
    ],
)
def test_purge_rejects_bad_windows(
    cli: Cli, target: Target, args: list[str], fragment: str
) -> None:
    assert_one_line_error(cli(target, "purge", *args), 2, fragment)


def test_purge_reads_its_window_from_the_environment(cli: Cli, target: Target) -> None:
    _seed(target)
    result = cli(target, "purge", "--json", env={"RANVIER_RETENTION_PRESET": "regulated"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["traces"] == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_purge_of_100k_events_lets_a_concurrent_writer_through(
    sqlite_target: Target, tmp_path: Path
) -> None:
    """Each batch is its own transaction: another process's appends land between them.

    (With `pause_s=0` SQLite's busy polling lets none through: hence the default pause.)
    """
    traces, steps, batch = 10_000, 10, 500

    async def fill(store: PersistenceStore) -> None:
        now = await store.now_ms()
        for start in range(0, traces, 1000):
            await asyncio.gather(*(
                store.import_trace(make_trace(
                    f"p{i:06d}", steps=steps, completion=CompletionState.SUCCESS,
                    at_ms=now - 40 * DAY_MS - i, payload_size=1,
                ))
                for i in range(start, start + 1000)
            ))  # fmt: skip

    sqlite_target.with_store(fill)
    stop = tmp_path / "stop"
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.cli.purge_writer", sqlite_target.url, str(stop)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        batch_ends: list[float] = []

        async def purge(store: PersistenceStore) -> retention.PurgeReport:
            return await retention.purge(
                store, 30 * DAY_MS, batch_size=batch,
                progress=lambda _: batch_ends.append(time.time()),
            )  # fmt: skip

        report = sqlite_target.with_store(purge)
    finally:
        stop.touch()
        out, _ = writer.communicate(timeout=60)
    assert report.traces == traces
    writes = [float(line) for line in out.split()]
    gaps = list(itertools.pairwise(batch_ends))
    served = [a for a, b in gaps if any(a < w < b for w in writes)]
    print(f"{len(batch_ends)} batches, {len(writes)} writer appends, {len(served)} gaps served")
    assert len(gaps) >= traces // batch - 1
    assert len(served) >= len(gaps) * 3 // 4, (len(served), len(gaps))
    assert sqlite_target.with_store(count_traces) == 1  # only the writer's trace is left
