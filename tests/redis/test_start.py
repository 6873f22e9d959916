"""A durable start on Redis: its state hash fields, one round trip, old traces, re-sends."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import orjson
import pytest
from redis.asyncio.connection import Connection

from ranvier import ForkOrigin, RestoreConflict, TraceStart, TraceStatus
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from ranvier.stores.redis import rows as codec
from tests.contract.helpers import envelope, must_load
from tests.faults.proxy import FaultProxy
from tests.redis.conftest import trace_id
from tests.redis.servers import RedisServer

LONG = 60_000
INPUT = {"qty": 2, "order": "o-1", "lines": [1.5, "é", None]}
START = TraceStart(circuit="orders", schematic_version="1.0", input=INPUT)
OLD_FIELDS = {b"id", b"circuit", b"version", b"created", b"updated", b"last"}


async def _state(store: RedisPersistenceStore, tid: str) -> dict[bytes, bytes]:
    return dict(await store.client.hgetall(k.trace_keys(store.prefix, tid)[0]))


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """[writes to any redis connection (one per round trip), those that carry scripts (a
    new connection's handshake is not among them)]."""
    count = [0, 0]
    original = Connection.send_packed_command

    async def counting(self: Connection, command: Any, *args: Any, **kwargs: Any) -> None:
        packed = command if isinstance(command, bytes) else b"".join(command)
        count[0] += 1
        count[1] += b"EVAL" in packed
        await original(self, command, *args, **kwargs)

    monkeypatch.setattr(Connection, "send_packed_command", counting)
    yield count


async def test_a_start_is_fields_of_the_state_hash_and_nothing_else(
    redis_store: RedisPersistenceStore,
) -> None:
    tid = trace_id()
    assert await redis_store.acquire_lease(tid, "w1", LONG, start=START) is not None
    state = await _state(redis_store, tid)
    assert set(state) == OLD_FIELDS | {b"input", b"attempts"}
    assert state[b"input"] == orjson.dumps(INPUT, option=orjson.OPT_SORT_KEYS)
    assert (state[b"id"], state[b"last"], state[b"attempts"]) == (tid.encode(), b"-1", b"1")
    assert state[b"created"] == state[b"updated"]
    keys = k.trace_keys(redis_store.prefix, tid)
    present = [bool(await redis_store.client.exists(key)) for key in keys]
    assert present == [True, False, False, False, True]  # state and lease: no events yet

    null = trace_id()
    assert await redis_store.acquire_lease(null, "w1", LONG, start=replace(START, input=None))
    assert b"input" not in await _state(redis_store, null)


async def test_a_trace_stored_before_starts_existed_loads_without_them(
    redis_store: RedisPersistenceStore,
) -> None:
    tid = trace_id()
    state, events = k.trace_keys(redis_store.prefix, tid)[:2]
    env = envelope(tid, 0, {"a": 1}, timestamp_ms=5)
    await redis_store.client.hset(
        state,
        mapping={"id": tid, "circuit": "orders", "version": "1.0", "created": 1, "updated": 2},
    )
    await redis_store.client.hset(state, "last", 0)
    record = codec.event_record(env, orjson.dumps(env.payload))
    await redis_store.client.hset(events, "0", record)
    trace = await must_load(redis_store, tid)
    assert (trace.input, trace.attempts, trace.forked_from) == (None, 0, None)
    assert [e.payload for e in trace.events] == [{"a": 1}]
    (summary,) = (await redis_store.list_traces(circuit="orders")).items
    assert summary.attempts == 0
    assert (await redis_store.list_traces(min_attempts=1)).items == ()
    lease = await redis_store.acquire_lease(tid, "w1", LONG)  # a resume counts from 0
    assert lease is not None and (await must_load(redis_store, tid)).attempts == 1
    page = await redis_store.list_traces(status=TraceStatus.RUNNING, min_attempts=1)
    assert [(s.trace_id, s.attempts) for s in page.items] == [(tid, 1)]


async def test_a_start_goes_out_in_the_lease_scripts_one_round_trip(
    redis_store: RedisPersistenceStore, sends: list[int]
) -> None:
    await redis_store.acquire_lease(trace_id(), "warm-up", LONG)  # connections open
    before = list(sends)
    tid = trace_id()
    assert await redis_store.acquire_lease(tid, "w1", LONG, start=START) is not None
    assert [n - b for n, b in zip(sends, before, strict=True)] == [1, 1]
    assert (await must_load(redis_store, tid)).attempts == 1


async def test_concurrent_starts_of_many_traces_are_batched(
    redis_store: RedisPersistenceStore, sends: list[int]
) -> None:
    await redis_store.acquire_lease(trace_id(), "warm-up", LONG)
    ids = [trace_id() for _ in range(64)]
    before = sends[1]
    leases = await asyncio.gather(
        *(
            redis_store.acquire_lease(tid, "w", LONG, start=replace(START, input={"id": tid}))
            for tid in ids
        )
    )
    assert all(lease is not None and lease.token == 1 for lease in leases)
    assert sends[1] - before <= 4  # the first at once, the rest as one pipeline (per node)
    for tid in ids:
        trace = await must_load(redis_store, tid)
        assert (trace.input, trace.attempts, trace.events) == ({"id": tid}, 1, ())


async def test_a_start_resent_after_an_unknown_outcome_counts_one_attempt(
    private_server: RedisServer,
) -> None:
    async with FaultProxy(private_server.port) as proxy:
        async with await RedisPersistenceStore.connect(f"redis://{proxy.address}/0") as store:
            tid = trace_id()
            proxy.drop_answer(count=1)  # the script ran, its reply never arrives
            lease = await store.acquire_lease(tid, "w1", LONG, start=START)
        assert proxy.stats["drop_answer"] == 1
    assert lease is not None and lease.token == 1
    async with await RedisPersistenceStore.connect(private_server.url) as direct:
        trace = await must_load(direct, tid)
    assert (trace.input, trace.attempts) == (INPUT, 1)


async def test_an_import_writes_the_start_fields_only_when_set(
    redis_store: RedisPersistenceStore,
) -> None:
    tid = trace_id()
    await redis_store.append(envelope(tid, 0))
    plain = await must_load(redis_store, tid)
    assert await redis_store.delete(tid)
    assert await redis_store.import_trace(plain) is True
    assert set(await _state(redis_store, tid)) == OLD_FIELDS

    fork = replace(
        plain,
        trace_id=trace_id(),
        events=(),
        input=INPUT,
        attempts=3,
        forked_from=ForkOrigin(trace_id=tid, step=1),
    )
    assert await redis_store.import_trace(fork) is True
    state = await _state(redis_store, fork.trace_id)
    assert set(state) == OLD_FIELDS | {b"input", b"attempts", b"forked_from", b"forked_at"}
    assert (state[b"attempts"], state[b"forked_from"], state[b"forked_at"]) == (
        b"3",
        tid.encode(),
        b"1",
    )
    assert await must_load(redis_store, fork.trace_id) == fork
    assert await redis_store.import_trace(fork) is False  # identical
    with pytest.raises(RestoreConflict):
        await redis_store.import_trace(replace(fork, attempts=4))
    with pytest.raises(RestoreConflict):
        await redis_store.import_trace(replace(fork, input={"other": 1}))
