"""Redis store benchmark, beside the raw floor measured in the same run.

    .venv/bin/python -m bench.bench_redis [--url redis://127.0.0.1:6379/0] [--n 3000]

Prints sequential append p50/p99, appends/s with 64 concurrent pipelines and the load
time of a 1,000-event trace (written sequentially and concurrently), next to one
`HSET` round trip and 64 concurrent `HSET`s through the same redis-py client. The floor
and the store are measured interleaved (sequential) or alternated, best of 3
(concurrent), so a busy machine slows both alike. Uses its own
key prefix and deletes it (SCAN + DEL) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from bench.common import Latency, latency_of, row, throughput
from ranvier import PersistenceEnvelope
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis.scan import scan_all

CONCURRENCY = 64
LOAD_EVENTS = 1000


def _envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    payload = {"order": trace_id, "step": step, "items": [1, 2, 3], "total": 42.5}
    return PersistenceEnvelope(
        trace_id=trace_id, circuit="bench", schematic_version="1", step=step, payload=payload
    )


async def _sequential(store: RedisPersistenceStore, n: int) -> tuple[Latency, Latency]:
    """One HSET round trip and one append, interleaved so both see the same machine."""
    client, key = store.client, f"{store.prefix}:{{floor}}:hash"
    value = b'{"items":[1,2,3],"order":"x","step":1,"total":42.5}'
    trace = f"seq-{uuid.uuid4().hex[:8]}"
    clock, floor, append = time.perf_counter_ns, [], []
    for i in range(-50, n):  # the first 50 warm up
        start = clock()
        await client.hset(key, str(i), value)
        middle = clock()
        await store.append(_envelope(trace, i + 50))
        if i >= 0:
            floor.append(middle - start)
            append.append(clock() - middle)
    return latency_of(floor), latency_of(append)


async def _concurrent(store: RedisPersistenceStore, n: int) -> tuple[float, float]:
    """Best of 3 rounds each, alternated: 64 concurrent HSETs and 64 concurrent appends."""
    client, key = store.client, f"{store.prefix}:{{floor}}:hash"
    value = b'{"items":[1,2,3],"order":"x","step":1,"total":42.5}'
    floor, append = 0.0, 0.0
    for _ in range(3):
        run = uuid.uuid4().hex[:8]
        hset = await throughput(n, CONCURRENCY, lambda w, i: client.hset(key, f"{w}:{i}", value))
        appends = await throughput(
            n, CONCURRENCY, lambda w, i, run=run: store.append(_envelope(f"con-{run}-{w}", i))
        )
        floor, append = max(floor, hset), max(append, appends)
    return floor, append


async def _loads(store: RedisPersistenceStore, n: int) -> tuple[Latency, Latency]:
    sequential = f"load-seq-{uuid.uuid4().hex[:8]}"
    for step in range(LOAD_EVENTS):
        await store.append(_envelope(sequential, step))
    concurrent = f"load-con-{uuid.uuid4().hex[:8]}"
    per = LOAD_EVENTS // CONCURRENCY + 1

    async def writer(w: int) -> None:
        for i in range(per):
            step = i * CONCURRENCY + w
            if step < LOAD_EVENTS:
                await store.append(_envelope(concurrent, step))

    await asyncio.gather(*(writer(w) for w in range(CONCURRENCY)))
    clock, samples = time.perf_counter_ns, {sequential: [], concurrent: []}
    for i in range(-5, max(50, n // 20)):  # alternated, so both see the same machine
        for trace_id, times in samples.items():
            start = clock()
            await store.load(trace_id)
            if i >= 0:
                times.append(clock() - start)
    return latency_of(samples[sequential]), latency_of(samples[concurrent])


async def _drop(store: RedisPersistenceStore) -> None:
    """SCAN + DEL of the bench's own prefix (never FLUSHALL: the server may be shared)."""
    async for keys in scan_all(store.client, f"{store.prefix}:*", 1000):
        pipe = store.client.pipeline(transaction=False)
        for key in keys:  # one by one: in a cluster they live on different slots
            pipe.delete(key)
        await pipe.execute()


async def main(url: str, n: int) -> None:
    prefix = f"ranvier:persistence:bench{uuid.uuid4().hex[:8]}"
    store = await RedisPersistenceStore.connect(url, prefix=prefix)
    try:
        floor_single, append_single = await _sequential(store, n)
        floor_many, append_many = await _concurrent(store, n * 2)
        load_seq, load_con = await _loads(store, n)
    finally:
        await _drop(store)
        await store.close()
    ratio = append_single.p50_us / floor_single.p50_us
    print(f"redis store benchmark ({url}, n={n})")
    row("floor: HSET round trip", str(floor_single))
    row(f"floor: {CONCURRENCY} concurrent HSETs", f"{floor_many:10,.0f} ops/s")
    row("append, sequential", f"{append_single}   ({ratio:.2f}x floor p50)")
    row(f"append, {CONCURRENCY} concurrent pipelines", f"{append_many:10,.0f} appends/s")
    row(f"load {LOAD_EVENTS} events (written sequentially)", str(load_seq))
    row(f"load {LOAD_EVENTS} events (written concurrently)", str(load_con))


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_url = os.environ.get("RANVIER_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
    parser.add_argument("--url", default=default_url, help="env: RANVIER_BENCH_REDIS_URL")
    parser.add_argument("--n", type=int, default=3000, help="sequential operations per figure")
    return parser.parse_args()


if __name__ == "__main__":
    options = _args()
    asyncio.run(main(options.url, options.n))
