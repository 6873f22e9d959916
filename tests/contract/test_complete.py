"""The rules of `complete`, for every adapter."""

from __future__ import annotations

import itertools

import pytest

from ranvier import CompletionState, InvalidInput, TraceCompleted, TraceNotFound
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import must_load, new_trace, new_trace_id, wait_past

ALLOWED_CHANGES = {(CompletionState.FAULT, CompletionState.COMPENSATED)}
REFUSED_CHANGES = [
    (a, b) for a, b in itertools.permutations(CompletionState, 2) if (a, b) not in ALLOWED_CHANGES
]


@pytest.mark.parametrize("state", list(CompletionState))
async def test_complete_sets_completion_and_completed_at_from_the_store_clock(
    store: PersistenceStore, state: CompletionState
) -> None:
    tid = await new_trace(store)
    before = await store.now_ms()
    await store.complete(tid, state)
    after = await store.now_ms()
    trace = await must_load(store, tid)
    assert trace.completion is state
    assert trace.completed_at_ms is not None
    assert before <= trace.completed_at_ms <= after
    assert trace.updated_at_ms >= trace.completed_at_ms


async def test_completing_with_the_same_state_again_is_a_no_op(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    await store.complete(tid, CompletionState.SUCCESS)
    first = await must_load(store, tid)
    await wait_past(store, first.updated_at_ms)
    await store.complete(tid, CompletionState.SUCCESS)
    assert await must_load(store, tid) == first


async def test_the_same_state_again_is_a_no_op_whatever_the_fence(
    store: PersistenceStore,
) -> None:
    """A completed trace cannot be written anyway: no lease, any token, still a no-op."""
    tid = await new_trace(store)
    await store.complete(tid, CompletionState.SUCCESS)
    first = await must_load(store, tid)
    await wait_past(store, first.updated_at_ms)
    await store.complete(tid, CompletionState.SUCCESS, fence=12345)
    assert await must_load(store, tid) == first
    assert await store.get_lease(tid) is None


async def test_fault_may_become_compensated(store: PersistenceStore) -> None:
    tid = await new_trace(store, completion=CompletionState.FAULT)
    faulted = await must_load(store, tid)
    assert faulted.completed_at_ms is not None
    await store.complete(tid, CompletionState.COMPENSATED)
    trace = await must_load(store, tid)
    assert trace.completion is CompletionState.COMPENSATED
    assert trace.completed_at_ms is not None
    assert trace.completed_at_ms >= faulted.completed_at_ms
    assert trace.events == faulted.events


@pytest.mark.parametrize(
    ("first", "second"), REFUSED_CHANGES, ids=[f"{a.value}-{b.value}" for a, b in REFUSED_CHANGES]
)
async def test_any_other_completion_change_is_refused(
    store: PersistenceStore, first: CompletionState, second: CompletionState
) -> None:
    tid = await new_trace(store, completion=first)
    before = await must_load(store, tid)
    with pytest.raises(TraceCompleted):
        await store.complete(tid, second)
    assert await must_load(store, tid) == before


async def test_compensated_cannot_go_back_to_fault(store: PersistenceStore) -> None:
    tid = await new_trace(store, completion=CompletionState.FAULT)
    await store.complete(tid, CompletionState.COMPENSATED)
    with pytest.raises(TraceCompleted):
        await store.complete(tid, CompletionState.FAULT)


async def test_complete_of_an_unknown_trace_is_not_found(store: PersistenceStore) -> None:
    with pytest.raises(TraceNotFound):
        await store.complete(new_trace_id(), CompletionState.SUCCESS)
    assert (await store.list_traces()).items == ()


async def test_complete_with_an_unknown_state_is_invalid(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    with pytest.raises(InvalidInput, match="completion state"):
        await store.complete(tid, "done")  # type: ignore[arg-type]
    assert (await must_load(store, tid)).completion is None
