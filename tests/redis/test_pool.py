"""Concurrency past the connection pool waits for a connection (issue 14, #3): 1,000
concurrent runs succeed with the default pool and with `max_connections=5`, the pool is
the size asked, and a wait that times out says which option to raise."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster

from ranvier import Axon, RunStatus, StoreUnavailable
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis.connection import WaitingCluster, WaitingPool
from ranvier.stores.redis.scan import primaries
from tests.contract.helpers import envelope, must_load
from tests.redis.conftest import trace_id

RUNS = 1000


async def _step(value: Any, ctx: Any) -> Any:
    await asyncio.sleep(0.001)
    return value


async def _connections_named(store: RedisPersistenceStore, name: str) -> list[int]:
    """Open connections of the store, per server (the client name the test gave it)."""
    counts = []
    for node in primaries(store.client):
        target = {} if node is None else {"target_nodes": node}
        listing = await store.client.execute_command("CLIENT", "LIST", **target)
        text = listing.decode() if isinstance(listing, bytes) else str(listing)
        counts.append(sum(f" name={name} " in f" {line} " for line in text.splitlines()))
    return counts


@pytest.mark.parametrize("max_connections", [None, 5])
async def test_a_thousand_concurrent_runs_wait_for_a_connection(
    redis_url: str, prefix: str, max_connections: int | None
) -> None:
    name = f"ranvier-pool-{uuid.uuid4().hex[:8]}"
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}client_name={name}"
    options = {} if max_connections is None else {"max_connections": max_connections}
    async with await RedisPersistenceStore.connect(url, prefix=prefix, **options) as store:
        axon = Axon("pool", version="1").then(_step, "a").then(_step, "b")
        ids = [trace_id() for _ in range(RUNS)]
        # a given trace id is loaded first: one transaction per run, all at once
        results = await asyncio.gather(
            *(axon.run({"i": i}, store=store, trace_id=tid) for i, tid in enumerate(ids)),
            return_exceptions=True,
        )
        assert [r for r in results if isinstance(r, BaseException)] == []
        assert {r.status for r in results if not isinstance(r, BaseException)} == {
            RunStatus.COMPLETED
        }
        if max_connections is not None:
            # a cluster client also keeps the connection it discovered the topology on
            extra = 1 if isinstance(store.client, WaitingCluster) else 0
            counts = await _connections_named(store, name)
            assert all(0 < n <= max_connections + extra for n in counts), counts
        assert [e.step for e in (await must_load(store, ids[-1])).events] == [0, 1]


@pytest.mark.parametrize("max_connections", [None, 5])
async def test_a_thousand_concurrent_appends_succeed(
    redis_url: str, prefix: str, max_connections: int | None
) -> None:
    options = {} if max_connections is None else {"max_connections": max_connections}
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, **options) as store:
        ids = [trace_id() for _ in range(RUNS)]
        await asyncio.gather(*(store.append(envelope(tid, 0)) for tid in ids))
        loaded = await asyncio.gather(*(store.load(tid) for tid in ids))
        assert all(trace is not None and len(trace.events) == 1 for trace in loaded)


@pytest.mark.parametrize("via", ["option", "url"])
async def test_the_pool_is_the_size_asked(redis_url: str, prefix: str, via: str) -> None:
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}max_connections=7&pool_timeout=3"
    options: dict[str, Any] = {"max_connections": 7, "pool_timeout": 3.0}
    if via == "url":
        store = await RedisPersistenceStore.connect(url, prefix=prefix)
    else:
        store = await RedisPersistenceStore.connect(redis_url, prefix=prefix, **options)
    async with store:
        client = store.client
        if isinstance(client, WaitingCluster):
            assert (client.gate.limit, client.gate.timeout) == (7, 3.0)
            assert {node.max_connections for node in client.get_nodes()} == {7}
        else:
            pool = client.connection_pool
            assert isinstance(pool, WaitingPool)
            assert (pool.max_connections, pool.timeout) == (7, 3.0)
        settings = (await store.describe()).settings
        assert (settings["max_connections"], settings["pool_timeout"]) == (7, 3.0)


async def test_the_default_pool_waits(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        settings = (await store.describe()).settings
        assert (settings["max_connections"], settings["pool_timeout"]) == (100, 10.0)


async def test_a_wait_past_pool_timeout_names_max_connections(redis_url: str, prefix: str) -> None:
    options: dict[str, Any] = {"max_connections": 1, "pool_timeout": 0.2}
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, **options) as store:
        tid = trace_id()
        await store.append(envelope(tid, 0))
        # BLPOP on an empty key holds the only connection for a second
        blocker = asyncio.ensure_future(store.client.blpop([f"{prefix}:{{{tid}}}:block"], 1))
        await asyncio.sleep(0.05)
        with pytest.raises(StoreUnavailable, match="max_connections=1"):
            await store.append(envelope(tid, 1))
        assert await blocker is None
        await store.append(envelope(tid, 1))  # the connection is free again
        assert [e.step for e in (await must_load(store, tid)).events] == [0, 1]


async def test_a_callers_own_client_is_honoured_and_waits(redis_url: str, prefix: str) -> None:
    if "cluster" in redis_url:
        first = redis_url.replace("redis+cluster://", "redis://").split(",")[0]
        client: Any = RedisCluster.from_url(first, max_connections=3)
    else:
        client = Redis.from_url(redis_url, max_connections=3)  # a pool that cannot wait
    try:
        store = RedisPersistenceStore(client, prefix=prefix)
        assert (await store.describe()).settings["max_connections"] == 3
        ids = [trace_id() for _ in range(200)]
        await asyncio.gather(*(store.append(envelope(tid, 0)) for tid in ids))
        loaded = await asyncio.gather(*(store.load(tid) for tid in ids))
        assert all(trace is not None for trace in loaded)
        await store.close()
    finally:
        await client.aclose()
