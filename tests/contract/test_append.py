"""The rules of `append`, for every adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ranvier import CheckpointConflict, CircuitMismatch, CompletionState, TraceCompleted
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, new_trace_id


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
