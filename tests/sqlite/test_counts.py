"""Counts, purges and lease tokens on SQLite: decided in SQL, read from indexes, never by
loading traces; statuses as `list_traces` tells them."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path

import pytest

from ranvier import CompletionState, LeaseLost, TraceStatus
from ranvier.rules import COUNTED_STATUSES
from ranvier.stores.sqlite import SqlitePersistenceStore, sql
from ranvier.stores.sqlite import writes as sqlite_ops
from tests.contract.helpers import envelope, new_trace_id, wait_past


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlitePersistenceStore]:
    async with SqlitePersistenceStore(tmp_path / "counts.db") as store:
        await store.ensure_schema()
        yield store


def _plan(path: Path, statement: str, *params: object) -> str:
    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
    return " | ".join(row[-1] for row in rows)


async def test_retention_counts_and_batches_read_covering_indexes(
    store: SqlitePersistenceStore, tmp_path: Path
) -> None:
    path = tmp_path / "counts.db"
    completed = _plan(path, sql.COUNT_COMPLETED_BEFORE, 1)
    assert "COVERING INDEX ranvier_persistence_state_completed" in completed
    batch = _plan(path, sql.PURGE_BATCH, 1, 500)
    assert "COVERING INDEX ranvier_persistence_state_completed" in batch
    assert "TEMP B-TREE" not in batch  # in index order, no sort
    keys = _plan(path, sql.COUNT_KEYS, 1)
    assert "COVERING INDEX ranvier_persistence_compensation_done" in keys
    assert "ranvier_persistence_compensation_done" in _plan(path, sql.PURGE_KEYS, 1, 1000)
    statuses = _plan(path, sql.COUNT_BY_COMPLETION, 1)
    assert "SCAN ranvier_persistence_state USING COVERING INDEX" in statuses
    assert "SCAN l" not in statuses  # leases are looked up, never scanned


async def _status_by_listing(store: SqlitePersistenceStore) -> dict[TraceStatus, int]:
    return {
        status: len((await store.list_traces(status=status, limit=1000)).items)
        for status in COUNTED_STATUSES
    }


async def test_counts_tell_running_from_interrupted_as_listing_does(
    store: SqlitePersistenceStore,
) -> None:
    live, expired, released, raised, done = (new_trace_id() for _ in range(5))
    for tid in (live, expired, released, raised, done):
        await store.append(envelope(tid, 0))
    assert await store.acquire_lease(live, "w1", 60_000) is not None
    assert await store.acquire_lease(expired, "w1", 1) is not None
    lease = await store.acquire_lease(released, "w1", 60_000)
    assert lease is not None and await store.release_lease(lease)
    held = await store.acquire_lease(raised, "w1", 60_000)
    assert held is not None
    await store.raise_lease_token(raised, held.token + 10)  # a restore: the holder is out
    with pytest.raises(LeaseLost):
        await store.append(envelope(raised, 1), fence=held.token)
    await store.complete(done, CompletionState.COMPENSATED)
    await wait_past(store, await store.now_ms() + 1)  # the 1 ms lease has expired
    counts = await store.count_traces_by_status()
    assert counts == await _status_by_listing(store)
    assert (counts[TraceStatus.RUNNING], counts[TraceStatus.INTERRUPTED]) == (1, 3)
    assert counts[TraceStatus.COMPENSATED] == 1


async def test_a_limited_purge_runs_batches_of_what_is_left_earliest_first(
    store: SqlitePersistenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    purge_batch = sqlite_ops.purge_batch

    def recording(conn: sqlite3.Connection, cutoff_ms: int, batch_size: int) -> int:
        sizes.append(batch_size)
        return purge_batch(conn, cutoff_ms, batch_size)

    monkeypatch.setattr(sqlite_ops, "purge_batch", recording)
    ids = []
    for _ in range(6):
        ids.append(new_trace_id())
        await store.append(envelope(ids[-1], 0))
        await store.complete(ids[-1], CompletionState.SUCCESS)
        await wait_past(store, await store.now_ms())
    cutoff = await store.now_ms() + 1
    assert await store.count_completed_before(cutoff) == 6
    assert await store.purge_completed(cutoff, batch_size=2, limit=5) == 5
    assert sizes == [2, 2, 1]
    assert [await store.load(t) is None for t in ids] == [True] * 5 + [False]
    assert await store.count_completed_before(cutoff) == 1


async def test_lease_tokens_page_in_trace_id_order(store: SqlitePersistenceStore) -> None:
    ids = sorted(new_trace_id("tok") for _ in range(5))
    for number, tid in enumerate(ids, start=1):
        await store.raise_lease_token(tid, number * 10)
    first = await store.list_lease_tokens(limit=3)
    rest = await store.list_lease_tokens(after=first[-1].trace_id, limit=3)
    assert [(t.trace_id, t.token) for t in first + rest] == [
        (tid, number * 10) for number, tid in enumerate(ids, start=1)
    ]
    lease = await store.acquire_lease(ids[0], "w1", 60_000)
    assert lease is not None and lease.token == 11


async def test_load_many_reads_one_snapshot_in_one_job(
    store: SqlitePersistenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [new_trace_id() for _ in range(3)]
    for tid in ids:
        await store.append(envelope(tid, 0))
    reads = 0
    read = store._db.read

    async def counting(work: object) -> object:
        nonlocal reads
        reads += 1
        return await read(work)  # type: ignore[arg-type]

    monkeypatch.setattr(store._db, "read", counting)
    found = await store.load_many([ids[2], "missing", ids[0], ids[2]])
    assert [t.trace_id for t in found] == [ids[2], ids[0], ids[2]]
    assert reads == 1
