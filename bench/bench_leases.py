"""What leases cost: a lease round trip beside a plain append, and a 10-step run's trips.

Run: `.venv/bin/python -m bench.bench_leases [--quick]`. Figures are printed, never
asserted. Per adapter present, in one run and interleaved round by round (so machine
noise hits both alike): the p50 of a plain `append` and of `acquire_lease` +
`release_lease`; then a 10-step pipeline run counted through a wrapper around the store:
target (issue 6) at most two extra round trips per run whatever the number of steps,
where nothing contends. A completed run makes one (the acquisition): its fenced
`complete` releases the lease in the same atomic write, so no `release_lease` follows.
A run's p50 is shown beside the same writes done bare (10 appends + complete, no lease).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import uuid
from collections import Counter
from typing import Any

from bench.bench_runtime import opened, present
from bench.common import time_each
from ranvier import (
    Axon,
    CompletionState,
    InMemoryPersistenceStore,
    LeaseSettings,
    PersistenceEnvelope,
)
from ranvier.stores.base import PersistenceStore

STEPS = 10
LEASE_CALLS = ("acquire_lease", "renew_lease", "release_lease", "get_lease")


class CountingStore:
    """Delegates to a store and counts its calls (each one store round trip)."""

    def __init__(self, inner: PersistenceStore) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name.startswith("_") or not callable(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await attr(*args, **kwargs)

        return call


def ten_steps() -> Axon:
    axon = Axon("bench-leases", version="1", lease=LeaseSettings())
    for i in range(STEPS):
        axon.then(lambda value, ctx: value + 1, f"s{i}")
    return axon


def _envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id, circuit="bench-bare", schematic_version="1", step=step,
        node_id=f"s{step}", payload=step + 1,
    )  # fmt: skip


async def measure(store: PersistenceStore, n: int, rounds: int) -> dict[str, Any]:
    run_id = uuid.uuid4().hex[:6]
    axon, counted = ten_steps(), CountingStore(store)

    async def append(i: int) -> None:
        await store.append(_envelope(f"ap-{run_id}-{i // STEPS}", i % STEPS))

    async def lease(i: int) -> None:
        got = await store.acquire_lease(f"ls-{run_id}-{i}", "bench", 30_000)
        assert got is not None
        await store.release_lease(got)

    async def run(i: int) -> None:
        await axon.run(0, store=counted, trace_id=f"run-{run_id}-{i}")  # type: ignore[arg-type]

    async def bare(i: int) -> None:
        trace_id = f"bare-{run_id}-{i}"
        for step in range(STEPS):
            await store.append(_envelope(trace_id, step))
        await store.complete(trace_id, CompletionState.SUCCESS)

    figures: dict[str, list[float]] = {k: [] for k in ("append", "lease", "run", "bare")}
    for r in range(rounds):
        for name, op in (("append", append), ("lease", lease), ("run", run), ("bare", bare)):
            many = n if name in ("append", "lease") else max(n // STEPS, 20)
            latency = await time_each(many, lambda i, op=op, r=r: op(r * 1_000_000 + i), 10)
            figures[name].append(latency.p50_us)
    runs = counted.calls["acquire_lease"]  # one acquisition per run
    per_run = {k: v / runs for k, v in counted.calls.items()}
    return {
        **{k: statistics.median(v) for k, v in figures.items()},
        "trips": sum(per_run.values()),
        "lease_trips": sum(v for k, v in per_run.items() if k in LEASE_CALLS),
    }


def table(results: dict[str, dict[str, Any]]) -> None:
    head = (
        f"{'adapter':<9} {'append p50':>11} {'acq+rel p50':>12} {'10-step run':>12} "
        f"{'bare writes':>12} {'trips/run':>10} {'lease trips':>12}"
    )
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        print(
            f"{name:<9} {r['append']:>9.1f}us {r['lease']:>10.1f}us {r['run']:>10.1f}us "
            f"{r['bare']:>10.1f}us {r['trips']:>10.1f} {r['lease_trips']:>12.1f}"
        )
    print(
        f"(p50s; 'bare writes' = the run's {STEPS} appends + complete without a lease; "
        "trips counted per run through a wrapper; target: lease trips <= 2; a completed "
        "run: 1, its complete releases the lease)"
    )


async def main(quick: bool) -> None:
    n, rounds = (100, 2) if quick else (400, 3)
    results = {"memory": await measure(InMemoryPersistenceStore(), n, rounds)}
    for name in present(["sqlite", "postgres", "redis"]):
        try:
            async with opened(name) as store:
                results[name] = await measure(store, n, rounds)
        except OSError as exc:
            print(f"{name}: unreachable ({exc})")
    table(results)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    asyncio.run(main(parser.parse_args().quick))
