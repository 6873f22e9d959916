"""The rules of `save_intervention` and of the pending intervention, for every adapter."""

from __future__ import annotations

import pytest

from ranvier import CompletionState, TraceCompleted, TraceNotFound, rules
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, intervention, must_load, new_trace, new_trace_id


async def test_interventions_are_stored_in_order_with_their_payloads(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    first = intervention("charge", {"amount": 10, "note": "é"}, 1_000)
    second = intervention("reserve", None, 2_000)
    third = intervention("charge", [1, 2.5, True], 3_000)
    for item in (first, second, third):
        await store.save_intervention(tid, item)
    assert (await must_load(store, tid)).interventions == (first, second, third)


async def test_save_intervention_touches_updated_at_but_not_the_events(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, steps=2)
    before = await must_load(store, tid)
    await store.save_intervention(tid, intervention("node1", {"x": 1}, 5))
    after = await must_load(store, tid)
    assert after.events == before.events
    assert after.updated_at_ms >= before.updated_at_ms


async def test_save_intervention_on_an_unknown_trace_is_not_found(
    store: PersistenceStore,
) -> None:
    with pytest.raises(TraceNotFound):
        await store.save_intervention(new_trace_id(), intervention("a", 1, 1))
    assert (await store.list_traces()).items == ()


async def test_save_intervention_on_a_completed_trace_is_refused(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, completion=CompletionState.FAULT)
    with pytest.raises(TraceCompleted):
        await store.save_intervention(tid, intervention("a", 1, 1))
    assert (await must_load(store, tid)).interventions == ()


async def test_the_newest_intervention_is_pending(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    assert rules.pending_intervention(await must_load(store, tid)) is None
    await store.save_intervention(tid, intervention("charge", {"v": 1}, 1_000))
    newest = intervention("charge", {"v": 2}, 2_000)
    await store.save_intervention(tid, newest)
    assert rules.pending_intervention(await must_load(store, tid)) == newest


async def test_a_later_checkpoint_of_the_target_node_consumes_the_intervention(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    pending = intervention("charge", {"v": 1}, 1_000)
    await store.save_intervention(tid, pending)
    await store.append(envelope(tid, 1, node_id="other", timestamp_ms=5_000))
    await store.append(envelope(tid, 2, node_id="charge", timestamp_ms=999))
    assert rules.pending_intervention(await must_load(store, tid)) == pending
    await store.append(envelope(tid, 3, node_id="charge", timestamp_ms=1_000))
    assert rules.pending_intervention(await must_load(store, tid)) is None


async def test_a_new_intervention_is_pending_again_after_one_was_consumed(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    await store.save_intervention(tid, intervention("charge", 1, 1_000))
    await store.append(envelope(tid, 1, node_id="charge", timestamp_ms=1_500))
    again = intervention("charge", 2, 2_000)
    await store.save_intervention(tid, again)
    assert rules.pending_intervention(await must_load(store, tid)) == again
