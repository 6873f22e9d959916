"""The runtime's own cost: per-step overhead, per-checkpoint time, leases.

Run: `.venv/bin/python -m bench.bench_runtime [--quick] [--adapters sqlite,postgres,redis]`.
Figures are printed, never asserted. Targets (issue 5, item 9; issue 6, item 6):
- in memory: pipeline overhead <= 20 us per step beyond the store's own append;
- 10-step pipeline, checkpoint every step, one run after another: <= 60 us per
  checkpoint on SQLite, <= 600 us on PostgreSQL; with 64 runs in flight: >= 20,000
  checkpoints/s on SQLite, >= 10,000/s on PostgreSQL;
- leases: acquire + release beside a plain append; one lease round trip per completed
  run (the acquisition: its fenced complete releases the lease in the same write).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from bench.common import Latency, row, time_each
from ranvier import Axon, InMemoryPersistenceStore, OutcomeKind, PersistenceEnvelope, open_store
from ranvier.stores.base import PersistenceStore

CONCURRENCY = 64
ORDER = {"order": "abc-123", "amount": 4200, "items": [1, 2, 3], "ok": True}
POSTGRES_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def step(value: dict[str, Any], ctx: Any) -> dict[str, Any]:
    return value


def pipeline(steps: int) -> Axon:
    axon = Axon("bench-runtime", version="1")
    for i in range(steps):
        axon.then(step, name=f"s{i}")
    return axon


def envelope(trace_id: str, seq: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit="bench-runtime",
        schematic_version="1",
        step=seq,
        outcome_kind=OutcomeKind.NEXT,
        node_id=f"s{seq}",
        payload=ORDER,
    )


async def per_run(
    store: PersistenceStore,
    axon: Axon,
    runs: int,
    clock: Callable[[], float] = time.perf_counter,
    warmup: int = 20,
) -> float:
    """Median seconds per run, runs one after another (the median shrugs off preemption)."""
    for _ in range(warmup):
        await axon.run(ORDER, store=store)
    samples = []
    for _ in range(runs):
        start = clock()
        await axon.run(ORDER, store=store)
        samples.append(clock() - start)
    return statistics.median(samples)


async def raw_run_ops(
    store: PersistenceStore, steps: int, runs: int, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median seconds for what a run asks of the store, called directly: the floor."""
    from ranvier import CompletionState

    async def one() -> None:
        trace = uuid.uuid4().hex
        lease = await store.acquire_lease(trace, "bench", 30_000)
        assert lease is not None
        for seq in range(steps):
            await store.append(envelope(trace, seq), fence=lease.token)
        await store.complete(trace, CompletionState.SUCCESS, fence=lease.token)
        await store.release_lease(lease)

    for _ in range(20):
        await one()
    samples = []
    for _ in range(runs):
        start = clock()
        await one()
        samples.append(clock() - start)
    return statistics.median(samples)


async def in_memory(quick: bool) -> None:
    """Floor and pipeline in alternating rounds, in CPU time (other processes on a busy
    machine do not count); the best round of each counts."""
    print("in-memory store: pipeline overhead per step beyond the store's own calls (CPU time)")
    cpu = time.process_time
    runs, rounds = (300, 3) if quick else (1000, 7)
    store = InMemoryPersistenceStore()
    short, long = pipeline(10), pipeline(50)
    best: dict[str, float] = {}
    for _ in range(rounds):
        for key, value in (
            ("floor10", await raw_run_ops(store, 10, runs, cpu)),
            ("run10", await per_run(store, short, runs, cpu)),
            ("floor50", await raw_run_ops(store, 50, runs // 5, cpu)),
            ("run50", await per_run(store, long, runs // 5, cpu)),
        ):
            best[key] = min(best.get(key, value), value)
    floor10, run10, floor50, run50 = (best[k] for k in ("floor10", "run10", "floor50", "run50"))
    row("10-step run, store calls only (the floor)", f"{floor10 * 1e6:8.1f} us")
    row("10-step run through Axon", f"{run10 * 1e6:8.1f} us")
    row("overhead per step, 10-step run (target <= 20)", f"{(run10 - floor10) / 10 * 1e6:8.1f} us")
    marginal = ((run50 - floor50) - (run10 - floor10)) / 40
    row("marginal overhead per extra step", f"{marginal * 1e6:8.1f} us")


async def checkpoints(name: str, store: PersistenceStore, quick: bool) -> None:
    axon = pipeline(10)
    runs = 100 if quick else 500
    # A new SQLite file's WAL grows by extending the file for its first ~50 MiB (~400 of
    # these runs), which costs 1.3-1.8x per commit here; then it is reused, as in any
    # store that has run for a while. The warm-up gets past that (docs/stores/sqlite.md).
    seconds = await per_run(store, axon, runs, warmup=50 if quick else 500)
    row(
        f"{name}: time per checkpoint, run by run (median run / 10)",
        f"{seconds / 10 * 1e6:8.1f} us",
    )
    total = (CONCURRENCY * 4) if quick else (CONCURRENCY * 16)

    async def worker(n: int) -> None:
        for _ in range(n):
            await axon.run(ORDER, store=store)

    async def in_flight(runs: int) -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(runs // CONCURRENCY) for _ in range(CONCURRENCY)))
        return runs * 10 / (time.perf_counter() - start)

    # steady state: the warm-up opens the connections that 64 runs in flight use (the
    # sequential runs above need one or two), then the median of three rounds
    await in_flight(CONCURRENCY * 2)
    rates = [await in_flight(total) for _ in range(1 if quick else 3)]
    row(
        f"{name}: checkpoints/s, {CONCURRENCY} runs in flight (median of {len(rates)})",
        f"{statistics.median(rates):10,.0f} /s  ({min(rates):,.0f}-{max(rates):,.0f})",
    )


async def lease_cost(name: str, store: PersistenceStore, quick: bool) -> None:
    n = 300 if quick else 2000
    trace = uuid.uuid4().hex

    async def append(i: int) -> None:
        await store.append(envelope(trace, i + 100))

    async def lease(i: int) -> None:
        got = await store.acquire_lease(f"{trace}-lease", "bench", 30_000)
        assert got is not None
        await store.release_lease(got)

    plain: Latency = await time_each(n, append)
    round_trip: Latency = await time_each(n, lease)
    row(f"{name}: plain append", str(plain))
    row(f"{name}: lease acquire + release", str(round_trip))


@asynccontextmanager
async def opened(name: str) -> AsyncIterator[PersistenceStore]:
    fresh = uuid.uuid4().hex[:8]
    if name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = await open_store(f"sqlite:///{tmp}/bench.db")
            try:
                yield store
            finally:
                await store.close()
        return
    if name == "postgres":
        store = await open_store(POSTGRES_URL, table_prefix=f"benchrt{fresh}_persistence")
        try:
            yield store
        finally:
            await store.drop_schema()  # type: ignore[attr-defined]
            await store.close()
        return
    prefix = f"ranvier:benchrt{fresh}"
    store = await open_store(REDIS_URL, prefix=prefix)
    try:
        yield store
    finally:
        await store.close()
        await _drop_redis(prefix)


async def _drop_redis(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        await client.delete(key)
    await client.aclose()


def present(names: list[str]) -> list[str]:
    return [n for n in names if importlib.util.find_spec(f"ranvier.stores.{n}") is not None]


async def each_adapter(names: list[str], quick: bool) -> None:
    print("durable stores: a 10-step pipeline that checkpoints every step")
    for name in present(names):
        try:
            async with opened(name) as store:
                await checkpoints(name, store, quick)
                await lease_cost(name, store, quick)
        except OSError as exc:
            row(name, f"unreachable: {exc}")


async def main_async(args: argparse.Namespace) -> None:
    await in_memory(args.quick)
    await each_adapter(args.adapters.split(","), args.quick)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--adapters", default="sqlite,postgres,redis")
    asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
