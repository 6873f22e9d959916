"""`bench`: the runbook's adapter selection table, measured on the operator's own stores.

Each store gets throwaway traces (`ranvier-bench-<random>-...`), deleted afterwards
even when a measurement fails.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ranvier.model import PersistenceEnvelope
from ranvier.ops.schema import describe
from ranvier.ops.stores import mask_url, open_with_defaults
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import resolve_store_url

BENCH_CIRCUIT = "ranvier-bench"


@dataclass(frozen=True, slots=True, kw_only=True)
class BenchRow:
    store: str
    adapter: str
    latency_p50_ms: float
    latency_p99_ms: float
    throughput_per_s: float
    resume_after_crash: bool
    multi_process: bool
    note: str


def _envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit=BENCH_CIRCUIT,
        schematic_version="1",
        step=step,
        node_id=f"step{step}",
        payload={"order": "bench", "step": step, "items": [1, 2, 3]},
    )


async def _latency(store: PersistenceStore, trace_id: str, samples: int) -> list[float]:
    timings: list[float] = []
    for step in range(samples):
        started = time.perf_counter()
        await store.append(_envelope(trace_id, step))
        timings.append((time.perf_counter() - started) * 1000)
    return sorted(timings)


async def _throughput(
    store: PersistenceStore, prefix: str, concurrency: int, per_worker: int
) -> tuple[float, list[str]]:
    ids = [f"{prefix}-w{w}" for w in range(concurrency)]

    async def worker(trace_id: str) -> None:
        for step in range(per_worker):
            await store.append(_envelope(trace_id, step))

    started = time.perf_counter()
    await asyncio.gather(*(worker(t) for t in ids))
    return concurrency * per_worker / (time.perf_counter() - started), ids


def _resume_after_crash(store: PersistenceStore, info: dict[str, Any]) -> tuple[bool, str]:
    if not store.capabilities.durable:
        return False, "data lost with the process"
    persistence = info.get("persistence")
    if store.adapter == "redis" and persistence is not None:
        if persistence.get("appendonly") is None:
            return False, "Redis persistence settings unreadable"
        if not persistence.get("appendonly") and not persistence.get("save"):
            return False, "Redis persistence is off"
    return True, ""


async def measure(
    url: str | None, *, samples: int = 200, concurrency: int = 64, per_worker: int = 20
) -> BenchRow:
    """Checkpoint latency, throughput with `concurrency` writers, and the two yes/no columns."""
    url = resolve_store_url(url)
    prefix = f"ranvier-bench-{uuid.uuid4().hex[:12]}"
    store = await open_with_defaults(url)
    ids = [f"{prefix}-latency"]
    try:
        timings = await _latency(store, ids[0], samples)
        rate, workers = await _throughput(store, prefix, concurrency, per_worker)
        ids += workers
        resumable, note = _resume_after_crash(store, await describe(store, url))
        return BenchRow(
            store=mask_url(url),
            adapter=store.adapter,
            latency_p50_ms=statistics.median(timings),
            latency_p99_ms=timings[min(len(timings) - 1, int(len(timings) * 0.99))],
            throughput_per_s=rate,
            resume_after_crash=resumable,
            multi_process=store.capabilities.multi_process,
            note=note,
        )
    finally:
        ids += [f"{prefix}-w{w}" for w in range(concurrency)]
        await asyncio.gather(*(store.delete(t) for t in set(ids)))
        await store.close()
