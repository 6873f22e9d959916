"""The rules of `list_traces`: filters and cursor pagination, for every adapter."""

from __future__ import annotations

import pytest

from ranvier import CompletionState, InvalidInput, TracePage, TraceStatus, TraceSummary
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import (
    all_pages,
    envelope,
    listed_ids,
    must_load,
    new_trace,
    new_trace_id,
    wait_past,
)

COMPLETED_STATUS = {
    CompletionState.SUCCESS: TraceStatus.SUCCEEDED,
    CompletionState.FAULT: TraceStatus.FAULTED,
    CompletionState.COMPENSATED: TraceStatus.COMPENSATED,
    CompletionState.CANCELLED: TraceStatus.CANCELLED,
}


async def _one_of_each(store: PersistenceStore, circuit: str) -> dict[TraceStatus, str]:
    """A trace in every status, on `circuit`."""
    traces = {}
    for state, status in COMPLETED_STATUS.items():
        traces[status] = await new_trace(store, circuit=circuit, completion=state)
    traces[TraceStatus.INTERRUPTED] = await new_trace(store, circuit=circuit)
    running = await new_trace(store, circuit=circuit)
    assert await store.acquire_lease(running, "worker-1", 60_000) is not None
    traces[TraceStatus.RUNNING] = running
    return traces


@pytest.mark.parametrize(
    "status", [s for s in TraceStatus if s is not TraceStatus.COMPLETED], ids=str
)
async def test_status_filter_selects_exactly_that_status(
    store: PersistenceStore, status: TraceStatus
) -> None:
    traces = await _one_of_each(store, "orders")
    assert await listed_ids(store, status=status) == {traces[status]}
    (summary,) = await all_pages(store, status=status)
    assert summary.status is status


async def test_completed_filter_selects_every_completion_state(store: PersistenceStore) -> None:
    traces = await _one_of_each(store, "orders")
    expected = {traces[s] for s in COMPLETED_STATUS.values()}
    assert await listed_ids(store, status=TraceStatus.COMPLETED) == expected


async def test_no_filter_lists_every_trace(store: PersistenceStore) -> None:
    traces = await _one_of_each(store, "orders")
    assert await listed_ids(store) == set(traces.values())


async def test_an_expired_or_released_lease_means_interrupted(store: PersistenceStore) -> None:
    expired, released = await new_trace(store), await new_trace(store)
    short = await store.acquire_lease(expired, "w", 100)
    held = await store.acquire_lease(released, "w", 60_000)
    assert short is not None and held is not None
    assert released in await listed_ids(store, status=TraceStatus.RUNNING)
    await store.release_lease(held)
    await wait_past(store, short.expires_at_ms)
    assert await listed_ids(store, status=TraceStatus.INTERRUPTED) == {expired, released}
    assert await listed_ids(store, status=TraceStatus.RUNNING) == set()


async def test_circuit_filter(store: PersistenceStore) -> None:
    billing = {await new_trace(store, circuit="billing") for _ in range(3)}
    await new_trace(store, circuit="orders")
    await new_trace(store, circuit="billing-v2")
    assert await listed_ids(store, circuit="billing") == billing
    assert await listed_ids(store, circuit="nothing") == set()


async def test_filters_combine(store: PersistenceStore) -> None:
    billing = await _one_of_each(store, "billing")
    await _one_of_each(store, "orders")
    found = await listed_ids(store, circuit="billing", status=TraceStatus.COMPLETED)
    assert found == {billing[s] for s in COMPLETED_STATUS.values()}


async def test_updated_before_filter_uses_the_last_update(store: PersistenceStore) -> None:
    old = await new_trace(store)
    touched = await new_trace(store)
    cutoff = await store.now_ms()
    await wait_past(store, cutoff)
    new = await new_trace(store)
    await store.append(envelope(touched, 1))
    assert await listed_ids(store, updated_before_ms=cutoff + 1) == {old}
    assert await listed_ids(store, updated_before_ms=0) == set()
    assert await listed_ids(store, updated_before_ms=await store.now_ms() + 1) == {
        old,
        touched,
        new,
    }


async def test_summary_describes_the_trace(store: PersistenceStore) -> None:
    tid = new_trace_id()
    for step in range(4):
        await store.append(envelope(tid, step, circuit="billing", version="3"))
    await store.resume(tid, 2)
    await store.complete(tid, CompletionState.FAULT)
    trace = await must_load(store, tid)
    (summary,) = await all_pages(store, circuit="billing")
    assert summary == TraceSummary(
        trace_id=tid,
        circuit="billing",
        schematic_version="3",
        status=TraceStatus.FAULTED,
        completion=CompletionState.FAULT,
        last_step=2,
        event_count=3,
        resumed_from_step=2,
        created_at_ms=trace.created_at_ms,
        updated_at_ms=trace.updated_at_ms,
        completed_at_ms=trace.completed_at_ms,
    )


async def test_pagination_visits_every_trace_exactly_once(store: PersistenceStore) -> None:
    ids = {await new_trace(store) for _ in range(23)}
    for limit in (1, 5, 7, 23, 100):
        summaries = await all_pages(store, limit=limit)
        assert sorted(s.trace_id for s in summaries) == sorted(ids), f"limit={limit}"


async def test_pagination_with_a_filter_visits_every_match_once(store: PersistenceStore) -> None:
    done = {await new_trace(store, completion=CompletionState.SUCCESS) for _ in range(9)}
    for _ in range(9):
        await new_trace(store)
    summaries = await all_pages(store, status=TraceStatus.SUCCEEDED, limit=4)
    assert sorted(s.trace_id for s in summaries) == sorted(done)


async def test_pages_are_bounded_by_limit(store: PersistenceStore) -> None:
    for _ in range(5):
        await new_trace(store)
    page = await store.list_traces(limit=2)
    assert isinstance(page, TracePage)
    assert len(page.items) == 2 and page.next_cursor is not None


async def test_traces_added_while_paging_do_not_repeat_earlier_ones(
    store: PersistenceStore,
) -> None:
    originals = {await new_trace(store) for _ in range(6)}
    first = await store.list_traces(limit=3)
    ids = set(originals)
    ids |= {await new_trace(store) for _ in range(3)}
    seen = [s.trace_id for s in first.items]
    cursor = first.next_cursor
    while cursor is not None:
        page = await store.list_traces(limit=3, cursor=cursor)
        seen.extend(s.trace_id for s in page.items)
        cursor = page.next_cursor
    assert len(seen) == len(set(seen))
    assert originals <= set(seen) <= ids


async def test_empty_store_lists_nothing(store: PersistenceStore) -> None:
    assert await store.list_traces() == TracePage(items=(), next_cursor=None)


@pytest.mark.parametrize("cursor", ["not a cursor!", "%%%", "\u00e9\u00e9\u00e9\u00e9", "====="])
async def test_a_cursor_the_store_did_not_hand_out_is_invalid(
    store: PersistenceStore, cursor: str
) -> None:
    await new_trace(store)
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_traces(cursor=cursor)


async def test_a_cursor_that_is_not_a_str_is_invalid(store: PersistenceStore) -> None:
    with pytest.raises(InvalidInput, match="cursor"):
        await store.list_traces(cursor=42)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [0, -1, 10_001, 2.5, "10"])
async def test_a_bad_limit_is_invalid(store: PersistenceStore, limit: object) -> None:
    with pytest.raises(InvalidInput, match="limit"):
        await store.list_traces(limit=limit)  # type: ignore[arg-type]


async def test_an_unknown_status_is_invalid(store: PersistenceStore) -> None:
    with pytest.raises(InvalidInput, match="status"):
        await store.list_traces(status="stuck")  # type: ignore[arg-type]


@pytest.mark.parametrize("circuit", ["", "c" * 256, "a\x00b", 5])
async def test_a_bad_circuit_filter_is_invalid(store: PersistenceStore, circuit: object) -> None:
    with pytest.raises(InvalidInput, match="circuit"):
        await store.list_traces(circuit=circuit)  # type: ignore[arg-type]


@pytest.mark.parametrize("cutoff", [-1, 1.5, "100"])
async def test_a_bad_updated_before_filter_is_invalid(
    store: PersistenceStore, cutoff: object
) -> None:
    with pytest.raises(InvalidInput, match="updated_before_ms"):
        await store.list_traces(updated_before_ms=cutoff)  # type: ignore[arg-type]
