"""Auto-complete and cancellation (issue 5, item 6)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ranvier import (
    Axon,
    CompletionState,
    OutcomeKind,
    RunStatus,
    StepContext,
    TraceCompleted,
    cancel,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import Recorder, new_trace_id


async def test_cancel_stops_the_run_at_the_next_step_boundary(store: PersistenceStore) -> None:
    tid = new_trace_id()
    started, release = asyncio.Event(), asyncio.Event()
    rec = Recorder()

    async def slow(value: int, ctx: StepContext) -> int:
        started.set()
        await release.wait()
        return value

    axon = Axon("cancel").then(rec.step("a")).then(slow).then(rec.step("c"))
    run = asyncio.create_task(axon.run(0, store=store, trace_id=tid))
    await started.wait()
    assert await cancel(store, tid) is True  # as from another process: only the store
    assert await cancel(store, tid) is False
    release.set()
    result = await run
    assert (result.status, result.completion) == (RunStatus.COMPLETED, CompletionState.CANCELLED)
    assert result.outcome.kind is OutcomeKind.CANCELLED
    assert rec.nodes == ["a"]
    trace = await store.load(tid)
    assert trace is not None
    assert [e.node_id for e in trace.events] == ["a"]
    assert await store.get_lease(tid) is None


async def test_cancel_of_a_trace_that_ended_otherwise_is_refused(store: PersistenceStore) -> None:
    result = await Axon("done").then(lambda v, ctx: v, name="x").run(1, store=store)
    with pytest.raises(TraceCompleted):
        await cancel(store, result.trace_id)


async def test_task_cancellation_completes_as_cancelled(store: PersistenceStore) -> None:
    tid = new_trace_id()
    started = asyncio.Event()

    async def forever(value: Any, ctx: StepContext) -> Any:
        started.set()
        await asyncio.sleep(3600)

    run = asyncio.create_task(Axon("task").then(forever).run(1, store=store, trace_id=tid))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    trace = await store.load(tid)
    assert trace is None or trace.completion is CompletionState.CANCELLED
    assert await store.get_lease(tid) is None


async def test_cancelling_after_a_checkpoint_leaves_a_cancelled_trace(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    started = asyncio.Event()

    async def forever(value: Any, ctx: StepContext) -> Any:
        started.set()
        await asyncio.sleep(3600)

    axon = Axon("task2").then(lambda v, ctx: v, name="first").then(forever)
    run = asyncio.create_task(axon.run(1, store=store, trace_id=tid))
    await started.wait()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    trace = await store.load(tid)
    assert trace is not None and trace.completion is CompletionState.CANCELLED


async def test_a_process_level_exception_still_completes_the_trace(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()

    def interrupt(value: Any, ctx: StepContext) -> Any:
        raise KeyboardInterrupt

    axon = Axon("kbd").then(lambda v, ctx: v, name="first").then(interrupt)
    with pytest.raises(KeyboardInterrupt):
        await axon.run(1, store=store, trace_id=tid)
    trace = await store.load(tid)
    assert trace is not None and trace.completion is CompletionState.FAULT
    assert await store.get_lease(tid) is None


async def test_auto_complete_off_leaves_the_trace_open(store: PersistenceStore) -> None:
    rec = Recorder()
    axon = Axon("open", auto_complete=False).then(rec.step("a"))
    result = await axon.run(0, store=store)
    assert (result.status, result.completion) == (RunStatus.COMPLETED, None)
    trace = await store.load(result.trace_id)
    assert trace is not None and trace.completion is None
