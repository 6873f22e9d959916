"""The batching writer: coalesced commits, per-job failures, never a blocked loop."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ranvier import CheckpointConflict, StoreUnavailable, TraceNotFound
from ranvier.stores.sqlite import SqlitePersistenceStore
from ranvier.stores.sqlite import writer as sqlite_writer
from ranvier.stores.sqlite.writer import SqliteDatabase
from tests.contract.helpers import envelope, new_trace_id


@pytest.fixture
async def store(tmp_path: Path) -> SqlitePersistenceStore:
    store = SqlitePersistenceStore(tmp_path / "writer.db")
    await store.ensure_schema()
    return store


async def test_one_conflict_in_a_batch_fails_only_itself(store: SqlitePersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"v": 1}))
    others = [envelope(new_trace_id(), 0) for _ in range(40)]
    results = await asyncio.gather(
        *(store.append(e) for e in others[:20]),
        store.append(envelope(tid, 0, {"v": 2})),
        *(store.append(e) for e in others[20:]),
        return_exceptions=True,
    )
    assert isinstance(results[20], CheckpointConflict)
    assert [r for i, r in enumerate(results) if i != 20] == [None] * 40
    for e in others:
        assert await store.load(e.trace_id) is not None
    await store.close()


async def test_concurrent_appends_share_transactions(
    store: SqlitePersistenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    run_batch = SqliteDatabase._run_batch

    def counting(self: SqliteDatabase, batch: list[object], inline: bool) -> object:
        sizes.append(len(batch))
        return run_batch(self, batch, inline)  # type: ignore[arg-type]

    monkeypatch.setattr(SqliteDatabase, "_run_batch", counting)
    await asyncio.gather(*(store.append(envelope(new_trace_id(), 0)) for _ in range(64)))
    assert sum(sizes) == 64 and max(sizes) > 1
    await store.close()


async def test_a_rule_error_after_a_write_rolls_back_only_that_job(tmp_path: Path) -> None:
    db = SqliteDatabase(str(tmp_path / "jobs.db"), synchronous="NORMAL", busy_timeout_ms=5000)
    db.create_file = True  # a bare database, no ranvier schema
    await db.submit(lambda c: c.execute("CREATE TABLE t (v INTEGER)"), heavy=True)

    def write_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t VALUES (99)")
        raise TraceNotFound("after a write")

    results = await asyncio.gather(
        db.submit(lambda c: c.execute("INSERT INTO t VALUES (1)").rowcount),
        db.submit(write_then_fail),
        db.submit(lambda c: c.execute("INSERT INTO t VALUES (2)").rowcount),
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], TraceNotFound)
    rows = await db.read(lambda c: sorted(r[0] for r in c.execute("SELECT v FROM t")))
    assert rows == [1, 2]
    await db.close()


async def test_a_locked_file_does_not_block_the_loop(
    store: SqlitePersistenceStore, tmp_path: Path
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))  # the writer connection is open: inline path
    with closing(sqlite3.connect(tmp_path / "writer.db", isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")  # another process holding the write lock
        task = asyncio.create_task(store.append(envelope(tid, 1)))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)  # returns only if the loop is free
            ticks += 1
        assert not task.done()  # waiting on the writer thread, not failed, not blocking
        other.execute("COMMIT")
    await task
    trace = await store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]
    assert ticks == 20
    await store.close()


async def test_a_lock_held_past_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "timeout.db"
    store = SqlitePersistenceStore(path, busy_timeout_ms=50)
    await store.ensure_schema()
    with closing(sqlite3.connect(path, isolation_level=None)) as other:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreUnavailable, match="locked"):
            await store.append(envelope(new_trace_id(), 0))
        other.execute("COMMIT")
    await store.close()


async def test_close_waits_for_submitted_writes_then_refuses(tmp_path: Path) -> None:
    path = tmp_path / "close.db"
    store = SqlitePersistenceStore(path)
    await store.ensure_schema()
    tids = [new_trace_id() for _ in range(50)]
    appends = [asyncio.create_task(store.append(envelope(t, 0))) for t in tids]
    await asyncio.sleep(0)
    await store.close()
    await asyncio.gather(*appends)
    with pytest.raises(StoreUnavailable, match="closed"):
        await store.append(envelope(new_trace_id(), 0))
    async with SqlitePersistenceStore(path) as reopened:
        for tid in tids:
            assert await reopened.load(tid) is not None


async def test_wal_checkpoints_run_on_the_reader_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[str] = []
    checkpoint = sqlite_writer._checkpoint

    def counting(conn: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        return checkpoint(conn)

    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_EVERY", 10)
    monkeypatch.setattr(sqlite_writer, "_checkpoint", counting)
    store = SqlitePersistenceStore(tmp_path / "ckpt.db")
    await store.ensure_schema()
    tid = new_trace_id()
    for step in range(40):
        await store.append(envelope(tid, step))
    await store.load(tid)  # queued behind the checkpoints on the reader thread
    assert threads  # at least one (one runs at a time; the rest were due meanwhile)
    assert all(name.startswith("ranvier-sqlite-r") for name in threads)
    await store.close()


async def test_the_wal_restarts_from_its_start_under_a_steady_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A passive checkpoint beside the writes never copies every frame, and SQLite
    # restarts the WAL only after one has: without the paused last pass, the WAL held
    # every frame ever written (it grew to GBs in the bench).
    threads: list[str] = []
    checkpoint = sqlite_writer._checkpoint

    def counting(conn: sqlite3.Connection) -> int:
        threads.append(threading.current_thread().name)
        return checkpoint(conn)

    monkeypatch.setattr(sqlite_writer, "CHECKPOINT_EVERY", 20)
    monkeypatch.setattr(sqlite_writer, "RESTART_WAL_FRAMES", 40)
    monkeypatch.setattr(sqlite_writer, "_checkpoint", counting)
    path = tmp_path / "restart.db"
    store = SqlitePersistenceStore(path)
    await store.ensure_schema()

    async def writer(tid: str) -> None:
        for step in range(100):
            await store.append(envelope(tid, step, {"pad": "x" * 200}))

    tids = [new_trace_id() for _ in range(32)]
    await asyncio.gather(*(writer(t) for t in tids))
    frames = path.with_name("restart.db-wal").stat().st_size // (4096 + 24)
    assert frames < 32 * 100  # each append wrote a frame: the WAL restarted at least once
    # (whether the last pass had to pause writes depends on the load: not asserted)
    assert not any(name == threading.current_thread().name for name in threads)  # not the loop
    for tid in tids:
        trace = await store.load(tid)
        assert trace is not None and len(trace.events) == 100
    await store.close()


def test_a_store_serves_one_event_loop_after_another(tmp_path: Path) -> None:
    store = SqlitePersistenceStore(tmp_path / "loops.db")
    tid = new_trace_id()
    asyncio.run(store.ensure_schema())
    asyncio.run(store.append(envelope(tid, 0)))
    asyncio.run(store.append(envelope(tid, 1)))
    trace = asyncio.run(store.load(tid))
    asyncio.run(store.close())
    assert trace is not None and [e.step for e in trace.events] == [0, 1]


class _CountingLoop(asyncio.SelectorEventLoop):
    """A loop with its own create_future, as uvloop and others have."""

    futures = 0

    def create_future(self) -> asyncio.Future[Any]:
        _CountingLoop.futures += 1
        return super().create_future()


def test_the_writer_uses_a_loops_own_create_future(tmp_path: Path) -> None:
    store = SqlitePersistenceStore(tmp_path / "own-futures.db")
    tids = [new_trace_id() for _ in range(8)]

    async def appends() -> None:
        await store.ensure_schema()
        await asyncio.gather(*(store.append(envelope(t, 0)) for t in tids))
        await asyncio.gather(*(store.append(envelope(t, 1)) for t in tids))

    loop = _CountingLoop()
    try:
        loop.run_until_complete(appends())
        assert _CountingLoop.futures >= len(tids)  # the batched appends waited on its futures
        traces = [loop.run_until_complete(store.load(t)) for t in tids]
        loop.run_until_complete(store.close())
    finally:
        loop.close()
    assert all(t is not None and len(t.events) == 2 for t in traces)
