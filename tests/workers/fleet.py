"""A five-step pipeline and interrupted traces to recover, shared by the worker tests.

An interrupted trace is seeded as a crashed worker leaves it: its first checkpoints
stored, no completion, no live lease.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from typing import Any

from ranvier import Axon, LeaseSettings, PersistenceEnvelope, StepContext
from ranvier.stores.base import PersistenceStore

CIRCUIT = "fleet"
STEPS = ("s0", "s1", "s2", "s3", "s4")
FAST_LEASE = LeaseSettings(ttl_ms=1_000, renew_every_ms=250)

Effect = Callable[[StepContext, Any], None]
"""Called by every step as it runs: records the side effect (by idempotency key)."""


def new_ids(n: int, label: str = "fleet") -> list[str]:
    run = uuid.uuid4().hex[:6]
    return [f"{label}-{run}-{i:03d}" for i in range(n)]


def checkpoint(
    trace_id: str, step: int, *, version: str = "1", circuit: str = CIRCUIT
) -> PersistenceEnvelope:
    """The checkpoint step `step` writes: its output is {"n": step + 1}."""
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=version,
        step=step,
        node_id=STEPS[step],
        payload={"n": step + 1},
    )


async def seed(
    store: PersistenceStore, trace_ids: list[str], rng: random.Random, **kw: Any
) -> dict[str, int]:
    """Store 1..4 checkpoints per trace; returns trace -> the first step still to run.

    Each trace is written under its lease, so a running `recover` sees it only whole.
    """
    first = {trace_id: rng.randint(1, len(STEPS) - 1) for trace_id in trace_ids}
    slots = asyncio.Semaphore(8)

    async def write(trace_id: str) -> None:
        async with slots:
            lease = await store.acquire_lease(trace_id, "seeder", 60_000)
            assert lease is not None
            for step in range(first[trace_id]):
                await store.append(checkpoint(trace_id, step, **kw), fence=lease.token)
            await store.release_lease(lease)

    await asyncio.gather(*(write(trace_id) for trace_id in trace_ids))
    return first


def pipeline(
    effect: Effect,
    *,
    version: str = "1",
    lease: LeaseSettings = FAST_LEASE,
    delay_s: float = 0.0,
    circuit: str = CIRCUIT,
    **axon_kw: Any,
) -> Axon:
    """Each step records its effect, waits `delay_s`, and adds one to n."""

    def make(name: str) -> Any:
        async def run(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
            effect(ctx, value)
            if delay_s:
                await asyncio.sleep(delay_s)
            return {"n": value["n"] + 1}

        run.__name__ = name
        return run

    axon = Axon(circuit, version=version, lease=lease, **axon_kw)
    for name in STEPS:
        axon.then(make(name))
    return axon
