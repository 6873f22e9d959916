"""The Redis store's own entry points, and SCAN paging across cluster nodes."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection

from ranvier import CompletionState, open_store
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from ranvier.stores.redis.connection import client_from_url
from ranvier.stores.redis.scan import primaries
from tests.contract.helpers import envelope, must_load, wait_past
from tests.redis.conftest import trace_id


async def test_open_store_takes_the_prefix_and_ttl(redis_url: str, prefix: str) -> None:
    store = await open_store(redis_url, prefix=prefix, ttl_seconds=60)
    try:
        assert isinstance(store, RedisPersistenceStore) and store.adapter == "redis"
        tid = trace_id()
        await store.append(envelope(tid, 0))
        state = k.trace_keys(prefix, tid)[0]
        assert 0 < int(await store.client.ttl(state)) <= 60
    finally:
        await store.close()


async def test_a_store_on_the_callers_client_leaves_it_open(redis_url: str, prefix: str) -> None:
    client = client_from_url(redis_url)
    try:
        store = RedisPersistenceStore.with_prefix_and_ttl(client, prefix, 3600)
        tid = trace_id()
        await store.append(envelope(tid, 0))
        await store.close()
        assert await client.exists(k.trace_keys(prefix, tid)[0]) == 1
        again = RedisPersistenceStore(client, prefix=prefix)
        assert [e.step for e in (await must_load(again, tid)).events] == [0]
        await again.close()
    finally:
        await client.aclose()


async def test_small_pages_list_every_trace_once(redis_store: RedisPersistenceStore) -> None:
    ids = {trace_id() for _ in range(25)}
    for tid in ids:
        await redis_store.append(envelope(tid, 0))
    for limit in (1, 3, 7):
        seen: list[str] = []
        cursor = None
        while True:
            page = await redis_store.list_traces(limit=limit, cursor=cursor)
            assert len(page.items) <= limit
            seen += [s.trace_id for s in page.items]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(ids)


async def test_purge_in_small_batches_removes_exactly_the_old_completed(
    redis_store: RedisPersistenceStore,
) -> None:
    done, running = [trace_id() for _ in range(9)], [trace_id() for _ in range(4)]
    for tid in done + running:
        await redis_store.append(envelope(tid, 0))
    for tid in done:
        await redis_store.complete(tid, CompletionState.SUCCESS)
    cutoff = await redis_store.now_ms() + 1
    late = trace_id()
    await redis_store.append(envelope(late, 0))
    await wait_past(redis_store, cutoff)
    await redis_store.complete(late, CompletionState.SUCCESS)  # completed after the cutoff
    assert await redis_store.purge_completed(cutoff, batch_size=2) == len(done)
    for tid in done:
        assert await redis_store.load(tid) is None
        assert not any(
            [await redis_store.client.exists(key) for key in k.trace_keys(redis_store.prefix, tid)]
        )
    for tid in [*running, late]:
        assert await redis_store.load(tid) is not None


async def test_load_many_is_one_round_trip(
    redis_store: RedisPersistenceStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [trace_id() for _ in range(20)]
    for tid in ids:
        await redis_store.append(envelope(tid, 0))
        await redis_store.append(envelope(tid, 1))
    await redis_store.load_many(ids)  # now every node knows the script (no NOSCRIPT)
    sends = [0]
    original = Connection.send_packed_command

    async def counting(self: Connection, *args: Any, **kwargs: Any) -> None:
        sends[0] += 1
        await original(self, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    found = await redis_store.load_many([*ids, "missing"])
    assert sends[0] <= len(primaries(redis_store.client))  # one pipeline per server
    monkeypatch.undo()
    assert [t.trace_id for t in found] == ids
    assert found == [await must_load(redis_store, tid) for tid in ids]


async def test_tokens_and_records_page_in_order_across_deletions(
    redis_store: RedisPersistenceStore,
) -> None:
    ids = sorted(trace_id() for _ in range(120))
    for tid in ids:
        await redis_store.acquire_lease(tid, "w", 60_000)
    comp = redis_store.compensations
    keys = sorted(f"{tid}:c:f" for tid in ids[:30])
    for key in keys:
        await comp.claim(key)
    first = await redis_store.list_lease_tokens(limit=50)
    assert [t.trace_id for t in first] == ids[:50]
    for tid in ids[50:60]:  # deleted between two pages: skipped, the page still full
        await redis_store.delete(tid)
    second = await redis_store.list_lease_tokens(after=first[-1].trace_id, limit=50)
    assert [t.trace_id for t in second] == ids[60:110]
    third = await redis_store.list_lease_tokens(after=second[-1].trace_id, limit=50)
    assert [t.trace_id for t in third] == ids[110:]
    assert {t.token for t in first + second + third} == {1}
    records = await comp.list_records(limit=20)
    records += await comp.list_records(after=records[-1].key, limit=20)
    assert [r.key for r in records] == keys
