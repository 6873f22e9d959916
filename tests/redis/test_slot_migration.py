"""A trace's slot moves to another master in the middle of its appends: nothing is lost.

The slot is migrated by hand, key by key, the way `redis-cli --cluster reshard` does:
SETSLOT IMPORTING / MIGRATING, MIGRATE of each key, then SETSLOT NODE everywhere. While
only some of the trace's keys have moved, its scripts get TRYAGAIN, afterwards ASK; the
writer sees either a transparent retry or `StoreUnavailable`, and retries like the
runtime does (an identical re-append is a no-op, so a retry never duplicates).
"""

from __future__ import annotations

import asyncio

from redis.crc import key_slot

from ranvier import StoreUnavailable
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from tests.adapters.redis import new_prefix
from tests.contract.helpers import envelope, must_load
from tests.redis.conftest import trace_id
from tests.redis.servers import RedisClusterServers, RedisServer, cli

STEPS = 200


def _node_ids(cluster: RedisClusterServers) -> dict[int, str]:
    """port -> cluster node id."""
    return {n.port: cli(n.port, "CLUSTER", "MYID").strip() for n in cluster.nodes}


def _owner(cluster: RedisClusterServers, slot: int) -> RedisServer:
    for node in cluster.nodes:
        if int(cli(node.port, "CLUSTER", "COUNTKEYSINSLOT", str(slot)) or 0) > 0:
            return node
    raise AssertionError(f"no node holds keys of slot {slot}")


def _migrate(
    cluster: RedisClusterServers, slot: int, source: RedisServer, target: RedisServer
) -> int:
    ids = _node_ids(cluster)
    cli(target.port, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", ids[source.port])
    cli(source.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", ids[target.port])
    moved = 0
    while True:
        keys = cli(source.port, "CLUSTER", "GETKEYSINSLOT", str(slot), "1").split()
        if not keys:
            break
        for key in keys:  # one key at a time: the trace is split across nodes for a while
            cli(source.port, "MIGRATE", "127.0.0.1", str(target.port), key, "0", "5000")
            moved += 1
    for node in cluster.nodes:
        cli(node.port, "CLUSTER", "SETSLOT", str(slot), "NODE", ids[target.port])
    return moved


async def _append_all(store: RedisPersistenceStore, tid: str, started: asyncio.Event) -> int:
    retries = 0
    for step in range(STEPS):
        for _ in range(500):
            try:
                await store.append(envelope(tid, step, {"s": step}))
                break
            except StoreUnavailable:
                retries += 1
                await asyncio.sleep(0.01)
        else:
            raise AssertionError(f"step {step} could not be written during the migration")
        if step == 20:
            started.set()
        await asyncio.sleep(0.002)
    return retries


async def test_a_slot_migration_in_the_middle_of_appends_loses_nothing(
    own_cluster: RedisClusterServers,
) -> None:
    prefix, tid = new_prefix(), trace_id()
    slot = key_slot(k.trace_keys(prefix, tid)[0].encode())
    async with await RedisPersistenceStore.connect(own_cluster.url, prefix=prefix) as store:
        started = asyncio.Event()
        writer = asyncio.create_task(_append_all(store, tid, started))
        await started.wait()
        source = _owner(own_cluster, slot)
        target = next(n for n in own_cluster.nodes if n is not source)
        moved = await asyncio.to_thread(_migrate, own_cluster, slot, source, target)
        assert not writer.done(), "the migration should end while appends still run"
        retries = await writer
        print(f"migrated {moved} keys of slot {slot}; the writer retried {retries} times")
        assert moved >= 2  # state and events at least
        assert _owner(own_cluster, slot) is target
        trace = await must_load(store, tid)
        assert [e.step for e in trace.events] == list(range(STEPS))
        assert [e.payload for e in trace.events] == [{"s": s} for s in range(STEPS)]
        await store.delete(tid)
