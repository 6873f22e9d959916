"""A run is durable from its first instant: trace, input and lease before step 0."""

from __future__ import annotations

import math
from typing import Any

import pytest

from ranvier import Axon, CompletionState, InvalidInput, StepContext, TraceStart, TraceStatus
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import new_trace_id


@pytest.mark.parametrize("given_id", [True, False])
async def test_the_trace_and_its_input_are_stored_before_the_first_step_runs(
    store: PersistenceStore, given_id: bool
) -> None:
    seen: list[Any] = []

    async def first(value: Any, ctx: StepContext) -> Any:
        trace = await store.load(ctx.trace_id)
        lease = await store.get_lease(ctx.trace_id)
        seen.append((trace.input if trace else "missing", trace and trace.events, lease))
        return value

    tid = new_trace_id() if given_id else None
    result = await Axon("durable").then(first).run({"qty": 3}, store=store, trace_id=tid)
    assert result.completion is CompletionState.SUCCESS and not result.resumed
    ((stored_input, events, lease),) = seen
    assert stored_input == {"qty": 3} and events == ()
    assert lease is not None and lease.trace_id == result.trace_id
    trace = await store.load(result.trace_id)
    assert trace is not None and trace.input == {"qty": 3} and trace.attempts == 1


async def test_a_run_with_an_input_that_is_not_json_stores_nothing(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    with pytest.raises(InvalidInput, match="NaN"):
        await (
            Axon("durable")
            .then(lambda v, ctx: v, name="a")
            .run({"x": math.nan}, store=store, trace_id=tid)
        )
    assert await store.load(tid) is None and await store.get_lease(tid) is None


async def test_a_stored_id_runs_again_from_its_stored_input_not_the_new_one(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    axon = Axon("durable").then(lambda v, ctx: v, name="a")
    start = TraceStart(circuit="durable", schematic_version="1", input={"first": True})
    lease = await store.acquire_lease(tid, "dead", 60_000, start=start)  # died before step 0
    assert lease is not None
    await store.release_lease(lease)
    page = await store.list_traces(status=TraceStatus.INTERRUPTED, circuit="durable")
    assert tid in [s.trace_id for s in page.items]
    result = await axon.run({"second": True}, store=store, trace_id=tid)
    assert result.value == {"first": True} and result.resumed
