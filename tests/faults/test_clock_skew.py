"""Clock skew and interventions: found by the clock-skew campaign (issue 15), not fixed.

`rules.pending_intervention` decides whether an operator's intervention was applied by
comparing its `timestamp_ms` (the operator's clock) with the checkpoints'
`timestamp_ms` (each worker's clock). With the operator's machine an hour behind, the
intervention is ignored; an hour ahead, it stays pending after it was applied, so the
next resume applies it again and re-runs steps whose checkpoints were acknowledged
(guarantee 3). Leases and retention use the store's clock and pass (`skew-*` in
test_campaigns.py); this rule does not. Strict xfail: the fix turns it into a failure
that asks for this marker to go.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import pytest

from ranvier import Axon, Intervention, PersistenceEnvelope, StepContext, TraceStart, open_store
from tests.crash.targets import Target
from tests.faults.catalog import store_target
from tests.faults.skew import HOUR_MS
from tests.faults.worker import skew_clock
from tests.workers.spawn import finish, start

STEPS = ("reserve", "charge", "pack", "ship")


def _pipeline(ran: list[tuple[str, Any]]) -> Axon:
    def make(name: str) -> Any:
        def step(value: Any, ctx: StepContext) -> Any:
            ran.append((name, value["amount"]))
            return value

        step.__name__ = name
        return step

    # no auto-complete: the run ends as one killed after its last checkpoint would
    axon = Axon("skew-intervention", auto_complete=False)
    for name in STEPS:
        axon.then(make(name))
    return axon


async def _interrupted(target: Target) -> str:
    """A trace stopped after `pack`, written by a worker with a correct clock."""
    trace_id = f"iv-{uuid.uuid4().hex[:8]}"
    store = await target.open()
    try:
        start_ = TraceStart(
            circuit="skew-intervention", schematic_version="1", input={"amount": 10}
        )
        lease = await store.acquire_lease(trace_id, "crashed", 60_000, start=start_)
        assert lease is not None
        for step, name in enumerate(STEPS[:3]):
            env = PersistenceEnvelope(
                trace_id=trace_id,
                circuit="skew-intervention",
                schematic_version="1",
                step=step,
                node_id=name,
                payload={"amount": 10},
            )
            await store.append(env, fence=lease.token)
        await store.release_lease(lease)
    finally:
        await store.close()
    return trace_id


async def _operator(url: str, options: dict[str, Any], skew_ms: int, trace_id: str) -> None:
    """`ranvier intervene` on a machine whose clock is `skew_ms` off."""
    skew_clock(skew_ms)
    store = await open_store(url, ensure_schema=False, **options)
    try:
        await store.save_intervention(
            trace_id, Intervention(target_node="charge", payload_override={"amount": 40})
        )
    finally:
        await store.close()


async def _resume(target: Target, trace_id: str) -> list[tuple[str, Any]]:
    ran: list[tuple[str, Any]] = []
    store = await target.open()
    try:
        await _pipeline(ran).resume(trace_id, store=store)
    finally:
        await store.close()
    return ran


@pytest.mark.xfail(strict=True, reason="src bug: interventions are decided by client clocks")
@pytest.mark.parametrize("skew_ms", [-HOUR_MS, HOUR_MS], ids=["behind", "ahead"])
@pytest.mark.parametrize("adapter", ["postgres", "redis"])
def test_an_intervention_from_a_skewed_clock_applies_exactly_once(
    adapter: str, skew_ms: int, tmp_path: Path
) -> None:
    with store_target(adapter, tmp_path) as target:
        trace_id = asyncio.run(_interrupted(target))
        finish([start(None, _operator, target.url, target.options, skew_ms, trace_id)])
        first = asyncio.run(_resume(target, trace_id))
        again = asyncio.run(_resume(target, trace_id))
    assert first == [("charge", 40), ("pack", 40), ("ship", 40)]  # applied
    assert again == []  # ... once: acknowledged steps never re-run
