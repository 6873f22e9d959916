"""The rules of `import_trace` (restore), for every adapter."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ranvier import (
    CompletionState,
    InvalidInput,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    RestoreConflict,
    rules,
)
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, intervention, must_load, new_trace, new_trace_id


async def _rich_trace(
    store: PersistenceStore, completion: CompletionState | None
) -> PersistedTrace:
    tid = await new_trace(store, steps=4)
    await store.save_intervention(tid, intervention("node2", {"fix": [1, "é"]}, 11))
    await store.resume(tid, 1)
    await store.append(envelope(tid, 2, {"rewritten": 1.5}, kind=OutcomeKind.EMIT))
    if completion is not None:
        await store.complete(tid, completion)
    return await must_load(store, tid)


@pytest.mark.parametrize("completion", [None, CompletionState.COMPENSATED])
async def test_export_then_import_round_trips_exactly(
    store: PersistenceStore, completion: CompletionState | None
) -> None:
    original = await _rich_trace(store, completion)
    assert await store.delete(original.trace_id)
    assert await store.import_trace(original) is True
    restored = await must_load(store, original.trace_id)
    assert rules.trace_digest(restored) == rules.trace_digest(original)
    assert restored == original


async def test_importing_an_identical_trace_again_is_a_no_op(store: PersistenceStore) -> None:
    original = await _rich_trace(store, CompletionState.SUCCESS)
    assert await store.import_trace(original) is False
    assert await must_load(store, original.trace_id) == original


async def test_importing_a_different_trace_under_a_stored_id_conflicts(
    store: PersistenceStore,
) -> None:
    original = await _rich_trace(store, None)
    changes = [
        replace(original, events=original.events[:-1]),
        replace(original, completion=CompletionState.SUCCESS, completed_at_ms=1),
        replace(original, interventions=()),
        replace(original, updated_at_ms=original.updated_at_ms + 1),
        replace(original, superseded_events=()),
    ]
    for changed in changes:
        with pytest.raises(RestoreConflict):
            await store.import_trace(changed)
    assert await must_load(store, original.trace_id) == original


async def test_imported_timestamps_are_kept_as_given(store: PersistenceStore) -> None:
    tid = new_trace_id()
    event = PersistenceEnvelope(
        trace_id=tid, circuit="c", schematic_version="v", step=0, timestamp_ms=3, payload=[1]
    )
    trace = PersistedTrace(
        trace_id=tid,
        circuit="c",
        schematic_version="v",
        events=(event,),
        created_at_ms=1_000,
        updated_at_ms=2_000,
        completion=CompletionState.CANCELLED,
        completed_at_ms=1_500,
    )
    assert await store.import_trace(trace) is True
    restored = await must_load(store, tid)
    assert (restored.created_at_ms, restored.updated_at_ms, restored.completed_at_ms) == (
        1_000,
        2_000,
        1_500,
    )
    assert rules.trace_digest(restored) == rules.trace_digest(trace)
    assert await store.import_trace(trace) is False


async def test_an_imported_open_trace_takes_more_checkpoints(store: PersistenceStore) -> None:
    original = await _rich_trace(store, None)
    await store.delete(original.trace_id)
    await store.import_trace(original)
    await store.append(envelope(original.trace_id, 3))
    await store.resume(original.trace_id, 0)
    await store.complete(original.trace_id, CompletionState.SUCCESS)
    trace = await must_load(store, original.trace_id)
    assert [e.step for e in trace.events] == [0]
    assert len(trace.superseded_events) == len(original.superseded_events) + 3


async def test_importing_bad_input_stores_nothing(store: PersistenceStore) -> None:
    original = await _rich_trace(store, None)
    await store.delete(original.trace_id)
    bad_event = replace(original.events[0], payload={"x": float("nan")}, payload_hash=None)
    bad_intervention = replace(original.interventions[0], payload_override=b"raw")
    for bad in (
        replace(original, events=(bad_event, *original.events[1:])),
        replace(original, interventions=(bad_intervention,)),
    ):
        with pytest.raises(InvalidInput):
            await store.import_trace(bad)
        assert await store.load(original.trace_id) is None


async def test_importing_events_of_another_trace_is_invalid(store: PersistenceStore) -> None:
    original = await _rich_trace(store, None)
    await store.delete(original.trace_id)
    stray = replace(original.events[0], trace_id=new_trace_id())
    for bad in (
        replace(original, events=(stray, *original.events[1:])),
        replace(original, events=(original.events[1], original.events[0])),
        replace(original, events=(original.events[0], original.events[0])),
        replace(original, events=(replace(original.events[0], circuit="other"),)),
    ):
        with pytest.raises(InvalidInput):
            await store.import_trace(bad)
        assert await store.load(original.trace_id) is None
