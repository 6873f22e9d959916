"""Numbers: steps and timestamps up to 2**63 - 1 on every adapter, larger ones refused
the same way, before anything is stored."""

from __future__ import annotations

import pytest

from ranvier import CompletionState, InvalidInput
from ranvier.rules import MAX_INT
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, must_load, new_trace_id


@pytest.mark.parametrize("step", [2**31 - 1, 2**31, 2**32 + 5, MAX_INT])
async def test_large_steps_are_stored_and_loaded(store: PersistenceStore, step: int) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, step, timestamp_ms=MAX_INT))
    trace = await must_load(store, tid)
    assert [(e.step, e.timestamp_ms) for e in trace.events] == [(step, MAX_INT)]
    await store.resume(tid, step)
    await store.complete(tid, CompletionState.SUCCESS)
    assert (await must_load(store, tid)).resumed_from_step == step


@pytest.mark.parametrize("field", ["step", "timestamp_ms"])
@pytest.mark.parametrize("value", [2**63, 2**64 + 1])
async def test_numbers_past_64_bits_are_refused_with_invalid_input(
    store: PersistenceStore, field: str, value: int
) -> None:
    tid = new_trace_id()
    bad = envelope(tid, value) if field == "step" else envelope(tid, 0, timestamp_ms=value)
    with pytest.raises(InvalidInput, match=r"at most 2\*\*63 - 1"):
        await store.append(bad)
    assert await store.load(tid) is None


async def test_a_resume_step_past_64_bits_is_refused(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    with pytest.raises(InvalidInput, match=r"at most 2\*\*63 - 1"):
        await store.resume(tid, 2**63)
    with pytest.raises(InvalidInput, match=r"at most 2\*\*63 - 1"):
        await store.purge_completed(2**63)
