"""The rules of `purge_completed` and `delete`: exact and whole, for every adapter."""

from __future__ import annotations

import pytest

from ranvier import CompletionState, InvalidInput
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import (
    envelope,
    intervention,
    listed_ids,
    must_load,
    new_trace,
    new_trace_id,
    wait_past,
)


async def _rich_trace(store: PersistenceStore, completion: CompletionState | None) -> str:
    """A trace with events, superseded events, an intervention and a lease."""
    tid = await new_trace(store, steps=3)
    await store.resume(tid, 0)
    await store.append(envelope(tid, 1, {"again": True}))
    await store.save_intervention(tid, intervention("node1", {"x": 1}, 7))
    lease = await store.acquire_lease(tid, "worker", 60_000)
    assert lease is not None
    if completion is not None:
        await store.complete(tid, completion)
    return tid


async def _assert_gone(store: PersistenceStore, trace_id: str) -> None:
    """Nothing of the trace is left: a new trace under its id starts from scratch."""
    assert await store.load(trace_id) is None
    assert await store.get_lease(trace_id) is None
    assert trace_id not in await listed_ids(store)
    await store.append(envelope(trace_id, 1, {"fresh": True}, circuit="reborn"))
    fresh = await must_load(store, trace_id)
    assert fresh.circuit == "reborn"
    assert [e.payload for e in fresh.events] == [{"fresh": True}]
    assert fresh.superseded_events == () and fresh.interventions == ()
    assert fresh.completion is None and fresh.resumed_from_step is None
    await store.delete(trace_id)


async def test_purge_removes_only_traces_completed_before_the_cutoff(
    store: PersistenceStore,
) -> None:
    old = [await _rich_trace(store, state) for state in CompletionState]
    running = await _rich_trace(store, None)
    interrupted = await new_trace(store)
    cutoff = await store.now_ms()
    await wait_past(store, cutoff)
    recent = await new_trace(store, completion=CompletionState.SUCCESS)
    assert await store.purge_completed(cutoff + 1) == len(old)
    for tid in old:
        await _assert_gone(store, tid)
    assert await listed_ids(store) == {running, interrupted, recent}
    assert (await must_load(store, running)).interventions != ()
    assert await store.get_lease(running) is not None


async def test_purge_never_removes_unfinished_traces(store: PersistenceStore) -> None:
    running = await _rich_trace(store, None)
    interrupted = await new_trace(store, steps=2)
    assert await store.purge_completed(await store.now_ms() + 1_000_000) == 0
    assert await listed_ids(store) == {running, interrupted}


async def test_purge_cutoff_is_exclusive(store: PersistenceStore) -> None:
    tid = await new_trace(store, completion=CompletionState.SUCCESS)
    completed_at = (await must_load(store, tid)).completed_at_ms
    assert completed_at is not None
    assert await store.purge_completed(completed_at) == 0
    assert await store.purge_completed(completed_at + 1) == 1
    assert await store.load(tid) is None


async def test_purge_with_a_batch_smaller_than_the_work_removes_everything(
    store: PersistenceStore,
) -> None:
    done = [await new_trace(store, steps=2, completion=CompletionState.SUCCESS) for _ in range(13)]
    kept = await new_trace(store)
    cutoff = await store.now_ms() + 1
    assert await store.purge_completed(cutoff, batch_size=4) == 13
    assert await listed_ids(store) == {kept}
    for tid in done:
        assert await store.load(tid) is None
    assert await store.purge_completed(cutoff, batch_size=4) == 0


async def test_purge_of_an_empty_store_is_zero(store: PersistenceStore) -> None:
    assert await store.purge_completed(await store.now_ms()) == 0


@pytest.mark.parametrize(("cutoff", "batch"), [(-1, 10), (10, 0), (10, -5), (10, 10_001)])
async def test_purge_with_bad_arguments_is_invalid(
    store: PersistenceStore, cutoff: int, batch: int
) -> None:
    tid = await new_trace(store, completion=CompletionState.SUCCESS)
    with pytest.raises(InvalidInput):
        await store.purge_completed(cutoff, batch_size=batch)
    assert await store.load(tid) is not None


async def test_delete_removes_the_trace_with_all_its_rows(store: PersistenceStore) -> None:
    running = await _rich_trace(store, None)
    done = await _rich_trace(store, CompletionState.FAULT)
    other = await new_trace(store)
    assert await store.delete(running) is True
    assert await store.delete(done) is True
    await _assert_gone(store, running)
    await _assert_gone(store, done)
    assert await listed_ids(store) == {other}


async def test_delete_of_an_unknown_trace_is_false(store: PersistenceStore) -> None:
    assert await store.delete(new_trace_id()) is False
    tid = await new_trace(store)
    assert await store.delete(tid) is True
    assert await store.delete(tid) is False
