"""The rules of `resume` (rewind), for every adapter."""

from __future__ import annotations

import pytest

from ranvier import (
    CheckpointConflict,
    CompletionState,
    InvalidInput,
    ResumeCursor,
    TraceCompleted,
    TraceNotFound,
)
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import append_steps, envelope, must_load, new_trace_id, wait_past


async def test_resume_returns_the_next_step_and_records_the_resume(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    cursor = await store.resume(tid, 2)
    assert cursor == ResumeCursor(trace_id=tid, next_step=3)
    trace = await must_load(store, tid)
    assert trace.resumed_from_step == 2
    assert [e.step for e in trace.events] == [0, 1, 2]
    assert trace.superseded_events == ()


async def test_rewind_supersedes_later_events_and_keeps_them_for_audit(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 5)
    original = await must_load(store, tid)
    cursor = await store.resume(tid, 1)
    assert cursor.next_step == 2
    trace = await must_load(store, tid)
    assert trace.events == original.events[:2]
    assert sorted(trace.superseded_events, key=lambda e: e.step) == list(original.events[2:])
    assert trace.last_step == 1


async def test_steps_after_the_resume_point_may_be_rewritten(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 4)
    await store.resume(tid, 1)
    await store.append(envelope(tid, 2, {"rewritten": True}))
    await store.append(envelope(tid, 3, {"rewritten": True}, node_id="other"))
    trace = await must_load(store, tid)
    assert [e.payload for e in trace.events] == [
        {"step": 0},
        {"step": 1},
        {"rewritten": True},
        {"rewritten": True},
    ]
    assert trace.events[3].node_id == "other"
    assert {e.step for e in trace.superseded_events} == {2, 3}


async def test_steps_up_to_the_resume_point_still_conflict(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    await store.resume(tid, 1)
    with pytest.raises(CheckpointConflict):
        await store.append(envelope(tid, 1, {"changed": True}))
    await store.append(envelope(tid, 1))  # identical retry: still a no-op


async def test_rewritten_steps_conflict_again_until_the_next_resume(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    await store.resume(tid, 0)
    await store.append(envelope(tid, 1, {"second": 1}))
    with pytest.raises(CheckpointConflict):
        await store.append(envelope(tid, 1, {"third": 1}))
    await store.resume(tid, 0)
    await store.append(envelope(tid, 1, {"third": 1}))
    trace = await must_load(store, tid)
    assert [e.payload for e in trace.events] == [{"step": 0}, {"third": 1}]
    assert sorted(str(e.payload) for e in trace.superseded_events) == sorted(
        [str({"step": 1}), str({"step": 2}), str({"second": 1})]
    )
    assert trace.resumed_from_step == 0


async def test_resume_from_minus_one_restarts_from_the_beginning(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    cursor = await store.resume(tid, -1)
    assert cursor.next_step == 0
    trace = await must_load(store, tid)
    assert trace.events == () and len(trace.superseded_events) == 3
    assert trace.resumed_from_step == -1
    await store.append(envelope(tid, 0, {"again": True}))
    assert (await must_load(store, tid)).events[0].payload == {"again": True}


async def test_resume_beyond_the_last_step_is_invalid_and_changes_nothing(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    before = await must_load(store, tid)
    with pytest.raises(InvalidInput, match="last checkpoint is step 2"):
        await store.resume(tid, 3)
    with pytest.raises(InvalidInput):
        await store.resume(tid, -2)
    assert await must_load(store, tid) == before


async def test_resume_beyond_the_last_live_step_after_a_rewind_is_invalid(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 5)
    await store.resume(tid, 1)
    with pytest.raises(InvalidInput):
        await store.resume(tid, 3)


async def test_resume_of_an_unknown_trace_is_not_found(store: PersistenceStore) -> None:
    with pytest.raises(TraceNotFound):
        await store.resume(new_trace_id(), 0)


async def test_resume_of_a_completed_trace_is_refused(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 2)
    await store.complete(tid, CompletionState.SUCCESS)
    before = await must_load(store, tid)
    with pytest.raises(TraceCompleted):
        await store.resume(tid, 0)
    assert await must_load(store, tid) == before


async def test_resume_touches_updated_at(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 2)
    before = await must_load(store, tid)
    await wait_past(store, before.updated_at_ms)
    await store.resume(tid, 0)
    assert (await must_load(store, tid)).updated_at_ms > before.updated_at_ms
