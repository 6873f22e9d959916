"""The rules of `append`, for every adapter."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ranvier import (
    CheckpointConflict,
    CircuitMismatch,
    CompletionState,
    OutcomeKind,
    PersistenceEnvelope,
    TraceCompleted,
    rules,
)
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import append_steps, envelope, must_load, new_trace_id, wait_past


async def test_first_append_creates_the_trace(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"order": "abc"}))
    trace = await store.load(tid)
    assert trace is not None
    assert trace.circuit == "orders"
    assert [e.step for e in trace.events] == [0]
    assert trace.events[0].payload == {"order": "abc"}
    assert trace.events[0].payload_hash is not None
    assert trace.completion is None


async def test_identical_reappend_is_a_no_op(store: PersistenceStore) -> None:
    tid = new_trace_id()
    first = envelope(tid, 0, {"a": 1}, timestamp_ms=1000)
    await store.append(first)
    await store.append(replace(first, timestamp_ms=2000))
    trace = await store.load(tid)
    assert trace is not None
    assert len(trace.events) == 1
    assert trace.events[0].timestamp_ms == 1000


async def test_different_envelope_for_a_recorded_step_conflicts(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"a": 1}))
    with pytest.raises(CheckpointConflict):
        await store.append(envelope(tid, 0, {"a": 2}))
    trace = await store.load(tid)
    assert trace is not None and trace.events[0].payload == {"a": 1}


async def test_another_circuit_is_a_mismatch(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    with pytest.raises(CircuitMismatch):
        await store.append(envelope(tid, 1, circuit="payments"))


async def test_completed_trace_takes_no_more_appends(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    await store.complete(tid, CompletionState.SUCCESS)
    with pytest.raises(TraceCompleted):
        await store.append(envelope(tid, 1))


async def test_completed_trace_rejection_stores_nothing(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    await store.complete(tid, CompletionState.FAULT)
    before = await must_load(store, tid)
    with pytest.raises(TraceCompleted):
        await store.append(envelope(tid, 1))
    assert await must_load(store, tid) == before


async def test_circuit_mismatch_stores_nothing(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    before = await must_load(store, tid)
    with pytest.raises(CircuitMismatch):
        await store.append(envelope(tid, 1, circuit="payments"))
    with pytest.raises(CircuitMismatch):
        await store.append(envelope(tid, 0, circuit="payments"))
    assert await must_load(store, tid) == before


async def test_conflict_on_another_node_id(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"a": 1}, node_id="charge"))
    with pytest.raises(CheckpointConflict):
        await store.append(envelope(tid, 0, {"a": 1}, node_id="refund"))


async def test_conflict_on_another_outcome_kind(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"a": 1}))
    with pytest.raises(CheckpointConflict):
        await store.append(envelope(tid, 0, {"a": 1}, kind=OutcomeKind.FAULT))


async def test_conflict_between_a_payload_and_none(store: PersistenceStore) -> None:
    tid = new_trace_id()
    first = envelope(tid, 0)
    await store.append(replace(first, payload=None))
    with pytest.raises(CheckpointConflict):
        await store.append(first)
    trace = await must_load(store, tid)
    assert trace.events[0].payload is None and trace.events[0].payload_hash is None


async def test_identical_means_same_json_regardless_of_key_order(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"a": 1, "b": [1, 2]}))
    await store.append(envelope(tid, 0, {"b": [1, 2], "a": 1}))
    assert len((await must_load(store, tid)).events) == 1


async def test_identical_reappend_of_an_earlier_step_is_a_no_op(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await append_steps(store, tid, 3)
    before = await must_load(store, tid)
    await store.append(envelope(tid, 1, timestamp_ms=1))
    assert (await must_load(store, tid)).events == before.events


async def test_events_are_ordered_by_step_when_appended_out_of_order(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    for step in (3, 0, 7, 1, 2):
        await store.append(envelope(tid, step))
    trace = await must_load(store, tid)
    assert [e.step for e in trace.events] == [0, 1, 2, 3, 7]
    assert trace.last_step == 7


async def test_append_keeps_every_envelope_field(store: PersistenceStore) -> None:
    tid = new_trace_id()
    payload = {"n": -(2**63), "big": 2**63 - 1, "f": 0.1, "s": "é✓", "l": [True, None, {}]}
    sent = envelope(tid, 4, payload, kind=OutcomeKind.BRANCH, node_id="route", timestamp_ms=123)
    await store.append(sent)
    got = (await must_load(store, tid)).events[0]
    digest = rules.payload_digest(rules.encode_payload(payload))
    assert got == replace(sent, payload_hash=digest)


@pytest.mark.parametrize("kind", list(OutcomeKind))
async def test_every_outcome_kind_round_trips(store: PersistenceStore, kind: OutcomeKind) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, kind=kind))
    assert (await must_load(store, tid)).events[0].outcome_kind is kind


async def test_none_node_id_and_payload_round_trip(store: PersistenceStore) -> None:
    tid = new_trace_id()
    sent = PersistenceEnvelope(
        trace_id=tid, circuit="orders", schematic_version="1.0", step=0, timestamp_ms=5
    )
    await store.append(sent)
    await store.append(sent)
    assert (await must_load(store, tid)).events == (sent,)


@pytest.mark.parametrize("payload", [0, "text", 1.5, False, [], {}, [1, "a", None]])
async def test_scalar_and_empty_payloads_round_trip(store: PersistenceStore, payload: Any) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, payload))
    stored = (await must_load(store, tid)).events[0].payload
    assert stored == payload and type(stored) is type(payload)


async def test_mutating_the_payload_after_append_changes_nothing(store: PersistenceStore) -> None:
    tid = new_trace_id()
    payload: dict[str, Any] = {"items": [1, 2]}
    await store.append(envelope(tid, 0, payload))
    payload["items"].append(3)
    loaded = await must_load(store, tid)
    assert loaded.events[0].payload == {"items": [1, 2]}
    loaded.events[0].payload["items"].append(4)
    assert (await must_load(store, tid)).events[0].payload == {"items": [1, 2]}


async def test_trace_keeps_the_circuit_and_version_of_its_first_event(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, circuit="billing", version="2.3"))
    trace = await must_load(store, tid)
    assert (trace.circuit, trace.schematic_version) == ("billing", "2.3")


async def test_created_and_updated_at_come_from_the_store_clock(store: PersistenceStore) -> None:
    tid = new_trace_id()
    before = await store.now_ms()
    await store.append(envelope(tid, 0, timestamp_ms=1))
    after = await store.now_ms()
    trace = await must_load(store, tid)
    assert before <= trace.created_at_ms <= after
    assert trace.updated_at_ms == trace.created_at_ms
    await wait_past(store, after)
    await store.append(envelope(tid, 1, timestamp_ms=1))
    later = await must_load(store, tid)
    assert later.created_at_ms == trace.created_at_ms
    assert after < later.updated_at_ms <= await store.now_ms()


async def test_a_fresh_trace_has_no_history(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    trace = await must_load(store, tid)
    assert trace.trace_id == tid
    assert trace.interventions == () and trace.superseded_events == ()
    assert trace.resumed_from_step is None
    assert trace.completion is None and trace.completed_at_ms is None
