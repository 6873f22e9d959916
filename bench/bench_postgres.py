"""The PostgreSQL store against the raw asyncpg floor, measured in one run.

Run: `.venv/bin/python -m bench.bench_postgres [--quick] [--url URL]`. Figures are
printed, never asserted. Targets (issue 3): sequential append p50 <= 1.3x a single-row
INSERT with autocommit; >= 25,000 appends/s with 64 concurrent pipelines; load of a
1,000-event trace <= 5 ms. Uses its own table prefix and drops its tables at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

import asyncpg
import orjson

from bench.common import Latency, latency_of, row, throughput, time_each
from ranvier import OutcomeKind, PersistenceEnvelope
from ranvier.stores.postgres import PostgresPersistenceStore

CONCURRENCY = 64
DEFAULT_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
PAYLOAD = {"order": "abc-123", "amount": 4200, "items": [1, 2, 3], "ok": True}
PAYLOAD_JSON = orjson.dumps(PAYLOAD, option=orjson.OPT_SORT_KEYS).decode()
FLOOR_TABLE = """CREATE TABLE {t} (trace_id text, step integer, node_id text,
    timestamp_ms bigint, payload json, PRIMARY KEY (trace_id, step))"""
FLOOR_INSERT = "INSERT INTO {t} VALUES ($1, $2, $3, $4, $5)"
FLOOR_BATCH = """INSERT INTO {t} SELECT * FROM unnest($1::text[], $2::int[], $3::text[],
    $4::bigint[], $5::json[])"""


def envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit="bench",
        schematic_version="1",
        step=step,
        outcome_kind=OutcomeKind.NEXT,
        node_id=f"node{step % 8}",
        payload=PAYLOAD,
    )


async def sequential_pair(
    conn: asyncpg.Connection, table: str, store: PostgresPersistenceStore, n: int
) -> tuple[Latency, Latency]:
    """Floor INSERT and store append, interleaved so that both see the same disk and load."""
    sql = FLOOR_INSERT.format(t=table)
    trace = f"seq-{uuid.uuid4().hex[:8]}"
    floor: list[int] = []
    ours: list[int] = []
    clock = time.perf_counter_ns
    for i in range(-50, n):  # the first 50 warm up
        start = clock()
        await conn.execute(sql, "floor-single", i + 1_000_000, "node", 0, PAYLOAD_JSON)
        middle = clock()
        await store.append(envelope(trace, i + 1000))
        end = clock()
        if i >= 0:
            floor.append(middle - start)
            ours.append(end - middle)
    return latency_of(floor), latency_of(ours)


async def floor_batches(pool: asyncpg.Pool, table: str, total: int) -> float:
    """Rows/s: 64-row batches, one commit each, 64 rows always waiting (ideal grouping)."""
    sql = FLOOR_BATCH.format(t=table)
    batches = max(1, total // CONCURRENCY)
    run = uuid.uuid4().hex[:8]

    async def batch(worker: int, i: int) -> None:
        trace = f"floor-batch-{run}-{worker}-{i}"
        async with pool.acquire() as conn:
            await conn.execute(
                sql,
                [trace] * CONCURRENCY,
                list(range(CONCURRENCY)),
                ["node"] * CONCURRENCY,
                [0] * CONCURRENCY,
                [PAYLOAD_JSON] * CONCURRENCY,
            )

    per_second = await throughput(batches, 4, batch)
    return per_second * CONCURRENCY


async def store_concurrent(store: PostgresPersistenceStore, total: int) -> float:
    run = uuid.uuid4().hex[:8]

    async def append(worker: int, i: int) -> None:
        await store.append(envelope(f"conc-{run}-{worker}", i))

    return await throughput(total, CONCURRENCY, append)


async def store_load(store: PostgresPersistenceStore, n: int) -> Latency:
    trace = f"load-{uuid.uuid4().hex[:8]}"
    await asyncio.gather(*(store.append(envelope(trace, step)) for step in range(1000)))

    async def load(i: int) -> None:
        loaded = await store.load(trace)
        assert loaded is not None and len(loaded.events) == 1000

    return await time_each(n, load, warmup=5)


async def main(url: str, quick: bool) -> None:
    n = 300 if quick else 2000
    total = 6400 if quick else 64_000
    prefix = f"bench{uuid.uuid4().hex[:8]}_persistence"
    floor_table = f"{prefix}_floor"
    store = await PostgresPersistenceStore.connect(url, table_prefix=prefix)
    pool = store.pool
    batched: list[float] = []
    concurrent: list[float] = []
    try:
        await store.ensure_schema()
        async with pool.acquire() as conn:
            await conn.execute(FLOOR_TABLE.format(t=floor_table))
            single, sequential = await sequential_pair(conn, floor_table, store, n)
        for _ in range(3):  # alternate, so both see the same machine; report the best
            batched.append(await floor_batches(pool, floor_table, total))
            concurrent.append(await store_concurrent(store, total))
        load = await store_load(store, 50 if quick else 200)
    finally:
        async with pool.acquire() as conn:
            await conn.execute(f"DROP TABLE IF EXISTS {floor_table}")
        await store.drop_schema()
        await store.close()
    print(f"PostgreSQL store vs raw asyncpg ({url.split('@')[-1]})")
    row("floor: single-row INSERT, autocommit", str(single))
    row("floor: 64-row INSERT per commit", f"{max(batched):10,.0f} rows/s (best of 3)")
    ratio = sequential.p50_us / single.p50_us
    row("append, sequential", f"{sequential}   {ratio:.2f}x floor (target <= 1.3x)")
    row(
        f"append, {CONCURRENCY} concurrent pipelines",
        f"{max(concurrent):10,.0f} /s (best of 3; target >= 25,000)",
    )
    row("load, 1,000-event trace", f"{load}   (target p50 <= 5,000 us)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=DEFAULT_URL, help="PostgreSQL URL (default: DATABASE_URL)")
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    args = parser.parse_args()
    asyncio.run(main(args.url, args.quick))
