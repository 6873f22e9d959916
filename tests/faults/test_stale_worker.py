"""A stale worker starts a step another worker already checkpointed (found by the kill,
stall and network campaigns of issue 15; not fixed here).

Worker A's checkpoint of step `a` reaches the store, but its answer, and A's lease
renewals, come late (a latency spike, a SIGSTOP, a GC pause). A's lease runs out,
worker B takes the trace over, runs `b` and `c` and completes it. Then A hears that `a`
was stored and starts `b`: the runner only stops at a step boundary once a renewal has
failed, and A's renewal is still on its way. The fencing token refuses A's checkpoint
of `b`, but `b` ran a second time after B's checkpoint of it was acknowledged
(guarantee 3). The runner could stop when the lease's ttl has elapsed since the last
acquisition or renewal that was acknowledged (a monotonic deadline). Strict xfail: the
fix turns it into a failure that asks for this marker (and
`checker.STALE_RERUNS_ARE_ANOMALIES`) to change.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ranvier import (
    Axon,
    InMemoryPersistenceStore,
    Lease,
    LeaseSettings,
    StepContext,
    open_store,
    recover,
)
from ranvier.model import PersistenceEnvelope

LEASE = LeaseSettings(ttl_ms=300, renew_every_ms=100)
LATE_S = 0.8


class LateAnswers:
    """The store behind a latency spike: step 0's answer and every renewal arrive late."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        await self._inner.append(envelope, fence=fence)
        if envelope.step == 0:
            await asyncio.sleep(LATE_S)  # stored; the answer is on its way

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        await asyncio.sleep(LATE_S)  # the renewal reaches the store after the lease ran out
        renewed: Lease = await self._inner.renew_lease(lease, ttl_ms)
        return renewed


def _pipeline(ran: list[tuple[str, str]], worker: str) -> Axon:
    def make(name: str) -> Any:
        def step(value: Any, ctx: StepContext) -> Any:
            ran.append((name, worker))
            return value

        step.__name__ = name
        return step

    axon = Axon("stale", lease=LEASE, max_attempts=100)
    for name in ("a", "b", "c"):
        axon.then(make(name))
    return axon


async def _store(adapter: str, tmp_path: Path) -> Any:
    if adapter == "memory":
        return InMemoryPersistenceStore()
    return await open_store(f"sqlite:///{tmp_path}/stale.db")


@pytest.mark.xfail(strict=True, reason="src bug: a stale worker starts an acknowledged step")
@pytest.mark.parametrize("adapter", ["memory", "sqlite"])
async def test_a_worker_whose_lease_ran_out_starts_no_further_step(
    adapter: str, tmp_path: Path
) -> None:
    store = await _store(adapter, tmp_path)
    ran: list[tuple[str, str]] = []
    try:
        stale = asyncio.create_task(
            _pipeline(ran, "A").run(1, store=LateAnswers(store), trace_id="t-1")
        )
        await asyncio.sleep(LEASE.ttl_ms / 1000 + 0.1)  # A's lease ran out meanwhile
        report = await recover(store, [_pipeline(ran, "B")])
        assert report.resumed == 1
        result = await stale
    finally:
        await store.close()
    assert result.status.value == "lease_lost"
    assert ran == [("a", "A"), ("b", "B"), ("c", "B")]  # A never starts `b`
