"""The rules of `load`, for every adapter."""

from __future__ import annotations

from ranvier import CompletionState, PersistedTrace
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import append_steps, envelope, intervention, must_load, new_trace_id


async def test_unknown_trace_loads_as_none(store: PersistenceStore) -> None:
    assert await store.load(new_trace_id()) is None


async def test_load_returns_a_persisted_trace_with_events_ordered_by_step(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 12)
    trace = await store.load(tid)
    assert isinstance(trace, PersistedTrace)
    assert [e.step for e in trace.events] == list(range(12))
    assert [e.payload for e in trace.events] == [{"step": s} for s in range(12)]
    assert all(e.trace_id == tid and e.circuit == "orders" for e in trace.events)


async def test_load_sees_only_its_own_trace(store: PersistenceStore) -> None:
    first, second = new_trace_id(), new_trace_id()
    await store.append(envelope(first, 0, {"who": 1}))
    await store.append(envelope(second, 0, {"who": 2}, circuit="other"))
    await store.append(envelope(second, 1, {"who": 2}, circuit="other"))
    trace = await must_load(store, first)
    assert [e.payload for e in trace.events] == [{"who": 1}]
    assert (await must_load(store, second)).circuit == "other"


async def test_load_is_repeatable(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    await store.save_intervention(tid, intervention("node1", {"x": 1}, 10))
    await store.resume(tid, 1)
    await store.complete(tid, CompletionState.CANCELLED)
    assert await store.load(tid) == await store.load(tid)


async def test_each_event_keeps_its_own_schematic_version(store: PersistenceStore) -> None:
    # A trace resumed through a version migration carries events of both versions.
    trace_id = new_trace_id()
    await store.append(envelope(trace_id, 0, version="1.0"))
    await store.append(envelope(trace_id, 1, version="2.0"))
    await store.append(envelope(trace_id, 2, version="2.0"))
    trace = await store.load(trace_id)
    assert trace is not None
    assert [e.schematic_version for e in trace.events] == ["1.0", "2.0", "2.0"]
    # a retry of the old-version event is still recognised as the same event
    await store.append(envelope(trace_id, 0, version="1.0"))
    again = await store.load(trace_id)
    assert again is not None and again.events == trace.events
