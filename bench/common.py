"""Shared timing helpers for the benchmarks (figures are printed, never asserted)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Latency:
    p50_us: float
    p99_us: float
    count: int

    def __str__(self) -> str:
        return f"p50 {self.p50_us:8.1f} us   p99 {self.p99_us:8.1f} us   (n={self.count})"


def latency_of(samples_ns: Sequence[int]) -> Latency:
    ordered = sorted(samples_ns)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return Latency(statistics.median(ordered) / 1000, p99 / 1000, len(ordered))


async def time_each(n: int, op: Callable[[int], Awaitable[object]], warmup: int = 50) -> Latency:
    """Run `op(i)` n times one after another; the latency of each call."""
    for i in range(warmup):
        await op(-1 - i)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        await op(i)
        samples.append(clock() - start)
    return latency_of(samples)


def time_each_sync(n: int, op: Callable[[int], object], warmup: int = 50) -> Latency:
    for i in range(warmup):
        op(-1 - i)
    samples: list[int] = []
    clock = time.perf_counter_ns
    for i in range(n):
        start = clock()
        op(i)
        samples.append(clock() - start)
    return latency_of(samples)


async def throughput(
    total: int, concurrency: int, op: Callable[[int, int], Awaitable[object]]
) -> float:
    """Operations per second with `concurrency` tasks each calling `op(worker, i)` in turn."""
    per_worker = total // concurrency

    async def worker(w: int) -> None:
        for i in range(per_worker):
            await op(w, i)

    start = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return per_worker * concurrency / (time.perf_counter() - start)


def row(label: str, value: str) -> None:
    print(f"  {label:<48} {value}")
