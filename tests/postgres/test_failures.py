"""Outages become StoreUnavailable, and a retry after an unknown outcome is safe."""

from __future__ import annotations

import asyncio
import socket
from urllib.parse import urlsplit

import pytest

from ranvier import StoreUnavailable
from ranvier.stores.postgres import PostgresPersistenceStore
from tests.adapters.postgres import fresh_prefix, open_postgres
from tests.contract.helpers import envelope, new_trace_id
from tests.faults.proxy import FaultProxy
from tests.servers import POSTGRES_URL


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_a_closed_port_is_store_unavailable() -> None:
    url = f"postgresql://postgres@127.0.0.1:{_free_port()}/test"
    with pytest.raises(StoreUnavailable) as caught:
        await PostgresPersistenceStore.connect(url, connect_timeout=2.0)
    assert isinstance(caught.value.__cause__, OSError)


async def test_an_exhausted_pool_is_store_unavailable_after_acquire_timeout() -> None:
    store = await PostgresPersistenceStore.connect(
        POSTGRES_URL,
        table_prefix=fresh_prefix(),
        min_connections=1,
        max_connections=1,
        acquire_timeout=0.2,
    )
    try:
        await store.ensure_schema()
        async with store.pool.acquire():  # the only connection is busy
            with pytest.raises(StoreUnavailable, match="timed out"):
                await store.append(envelope(new_trace_id(), 0))
            with pytest.raises(StoreUnavailable):
                await store.load("anything")
        await store.append(envelope(new_trace_id(), 0))  # usable again
    finally:
        await store.drop_schema()
        await store.close()


async def _backend_waiting_on_lock(store: PostgresPersistenceStore) -> int:
    for _ in range(200):
        async with store.pool.acquire() as conn:
            pid = await conn.fetchval(
                "SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1",
                f"%{store.table_prefix}_state%",
            )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.02)
    raise AssertionError("the append never reached the server")


async def test_a_connection_cut_mid_transaction_is_unavailable_and_the_retry_is_clean(
    pg_store: PostgresPersistenceStore,
) -> None:
    tid = new_trace_id()
    await pg_store.append(envelope(tid, 0))
    async with pg_store.pool.acquire() as blocker, blocker.transaction():
        # hold the trace's row lock so the next append waits inside its transaction
        await blocker.execute(
            f"SELECT 1 FROM {pg_store.table_prefix}_state WHERE trace_id = $1 FOR UPDATE", tid
        )
        pending = asyncio.create_task(pg_store.append(envelope(tid, 1)))
        pid = await _backend_waiting_on_lock(pg_store)
        async with pg_store.pool.acquire() as killer:
            assert await killer.fetchval("SELECT pg_terminate_backend($1)", pid)
        with pytest.raises(StoreUnavailable) as caught:
            await pending
        assert caught.value.__cause__ is not None
    await pg_store.append(envelope(tid, 1))  # the retry
    await pg_store.append(envelope(tid, 1))  # and a duplicate retry
    trace = await pg_store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]


async def test_a_retry_after_a_lost_answer_neither_duplicates_nor_conflicts(
    pg_store: PostgresPersistenceStore,
) -> None:
    url = urlsplit(POSTGRES_URL)
    proxy = await FaultProxy(url.port or 5432, url.hostname or "127.0.0.1").start()
    proxied_url = POSTGRES_URL.replace(url.netloc, f"{url.username}@{proxy.address}")
    store = await PostgresPersistenceStore.connect(
        proxied_url, table_prefix=pg_store.table_prefix, min_connections=1, max_connections=1
    )
    try:
        tid = new_trace_id()
        await store.append(envelope(tid, 0))
        proxy.drop_answer(count=None)  # every answer, until healed
        with pytest.raises(StoreUnavailable):
            await store.append(envelope(tid, 1, {"charged": 42}))
        assert proxy.stats["drop_answer"] >= 1
        committed = await pg_store.load(tid)  # the write did happen: the outcome was unknown
        assert committed is not None and [e.step for e in committed.events] == [0, 1]
        proxy.heal()
        await store.append(envelope(tid, 1, {"charged": 42}))  # the runtime's retry
        trace = await pg_store.load(tid)
        assert trace is not None and [e.step for e in trace.events] == [0, 1]
        assert trace.events[1].payload == {"charged": 42}
        assert trace.superseded_events == ()
    finally:
        await store.close()
        await proxy.close()


async def test_group_commit_fails_only_the_envelope_a_rule_rejects(
    pg_store: PostgresPersistenceStore,
) -> None:
    sizes: list[int] = []
    flush = pg_store._flush

    async def counting(batch: object) -> object:
        sizes.append(len(batch))  # type: ignore[arg-type]
        return await flush(batch)  # type: ignore[arg-type]

    pg_store._batcher.flush = counting  # type: ignore[assignment]
    taken = new_trace_id("taken")
    await pg_store.append(envelope(taken, 0, {"v": 1}))
    others = [new_trace_id() for _ in range(40)]
    results = await asyncio.gather(
        *(pg_store.append(envelope(t, 0)) for t in others[:20]),
        pg_store.append(envelope(taken, 0, {"v": 2})),  # conflicts
        pg_store.append(envelope(taken, 1, circuit="payments")),  # another circuit
        *(pg_store.append(envelope(t, 0)) for t in others[20:]),
        return_exceptions=True,
    )
    errors = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    assert errors == ["CheckpointConflict", "CircuitMismatch"]
    assert max(sizes) > 10  # they really shared transactions
    for t in others:
        trace = await pg_store.load(t)
        assert trace is not None and len(trace.events) == 1
    kept = await pg_store.load(taken)
    assert kept is not None and kept.events[0].payload == {"v": 1}


async def test_store_unavailable_after_close() -> None:
    store = await open_postgres(fresh_prefix())
    await store.close()
    with pytest.raises(StoreUnavailable):
        await store.load("t")
    with pytest.raises(StoreUnavailable):
        await store.append(envelope("t", 0))
