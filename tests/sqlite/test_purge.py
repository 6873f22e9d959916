"""purge_completed works in bounded batches, each its own transaction."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ranvier import CompletionState
from ranvier.stores.sqlite import SqlitePersistenceStore
from ranvier.stores.sqlite import writes as sqlite_ops
from tests.contract.helpers import envelope, new_trace_id


async def test_purge_runs_one_transaction_per_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batches: list[int] = []
    purge_batch = sqlite_ops.purge_batch

    def counting(conn: sqlite3.Connection, cutoff_ms: int, batch_size: int) -> int:
        assert conn.in_transaction
        count = purge_batch(conn, cutoff_ms, batch_size)
        batches.append(count)
        return count

    monkeypatch.setattr(sqlite_ops, "purge_batch", counting)
    async with SqlitePersistenceStore(tmp_path / "purge.db") as store:
        await store.ensure_schema()
        done = [new_trace_id() for _ in range(5)]
        running = new_trace_id()
        for tid in [*done, running]:
            await store.append(envelope(tid, 0))
            await store.append(envelope(tid, 1))
        for tid in done:
            await store.complete(tid, CompletionState.SUCCESS)
        cutoff = await store.now_ms() + 1
        assert await store.purge_completed(cutoff, batch_size=2) == 5
        assert batches == [2, 2, 1]
        for tid in done:
            assert await store.load(tid) is None
        assert await store.load(running) is not None
