"""Resume after a crash (runbook Scenario A), interventions, versions (issue 5, item 3)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ranvier import (
    Axon,
    CircuitMismatch,
    CompletionState,
    Intervention,
    Outcome,
    OutcomeKind,
    StepContext,
    TraceNotFound,
    VersionMismatch,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import Recorder, chain, envelope, new_trace_id


async def crashed_after(store: PersistenceStore, tid: str, steps: int, **kw: Any) -> None:
    """Store what a run of `chain` that died after `steps` checkpoints left behind."""
    for i, node in enumerate("abcd"[:steps]):
        await store.append(envelope(tid, i, node, i + 1, **kw))


async def test_resume_continues_after_the_last_checkpoint_with_its_payload(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 2)
    rec = Recorder()
    result = await chain(rec).resume(tid, store=store)
    assert rec.calls == [("c", f"{tid}:2", 1, 2), ("d", f"{tid}:3", 1, 3)]
    assert (result.completion, result.value, result.resumed, result.steps_run) == (
        CompletionState.SUCCESS,
        4,
        True,
        2,
    )
    trace = await store.load(tid)
    assert trace is not None
    assert trace.resumed_from_step == 1
    assert [e.step for e in trace.events] == [0, 1, 2, 3]


async def test_the_step_in_flight_reruns_with_the_same_idempotency_key(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    keys: list[str] = []

    def charge(value: int, ctx: StepContext) -> int:
        keys.append(ctx.idempotency_key)
        if len(keys) == 1:
            raise KeyboardInterrupt  # the process dies in the middle of the step
        return value

    # a real crash completes nothing: auto_complete off stands in for the dead process
    axon = Axon("pay", auto_complete=False).then(lambda v, ctx: v, name="validate").then(charge)
    with pytest.raises(KeyboardInterrupt):
        await axon.run(1, store=store, trace_id=tid)
    resumer = Axon("pay").then(lambda v, ctx: v, name="validate").then(charge)
    await resumer.resume(tid, store=store)
    assert keys == [f"{tid}:1", f"{tid}:1"]


async def test_run_with_a_stored_trace_id_resumes_it(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 3)
    rec = Recorder()
    result = await chain(rec).run(999, store=store, trace_id=tid)
    assert (rec.nodes, result.value) == (["d"], 4)


async def test_a_completed_trace_is_not_rerun(store: PersistenceStore) -> None:
    tid = new_trace_id()
    first = await chain(Recorder()).run(0, store=store, trace_id=tid)
    rec = Recorder()
    again = await chain(rec).resume(tid, store=store)
    assert rec.calls == []
    assert (again.completion, again.value, again.steps_run) == (first.completion, 4, 0)


async def test_resume_after_the_last_step_only_completes(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 4)
    rec = Recorder()
    result = await chain(rec).resume(tid, store=store)
    assert (rec.calls, result.completion, result.value) == ([], CompletionState.SUCCESS, 4)


async def test_resume_after_a_jump_continues_at_its_target(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, "a", 1))
    await store.append(envelope(tid, 1, "b", {"jump": "d", "value": 50}, kind=OutcomeKind.JUMP))
    rec = Recorder()
    result = await chain(rec).resume(tid, store=store)
    assert rec.calls == [("d", f"{tid}:2", 1, 50)]
    assert result.value == 51


async def test_a_pending_intervention_wins(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 3)
    await asyncio.sleep(0.005)  # pending means: no checkpoint of the target since
    await store.save_intervention(tid, Intervention(target_node="b", payload_override=100))
    rec = Recorder()
    result = await chain(rec).resume(tid, store=store)
    assert rec.calls == [
        ("b", f"{tid}:1", 1, 100),
        ("c", f"{tid}:2", 1, 101),
        ("d", f"{tid}:3", 1, 102),
    ]
    assert result.value == 103
    trace = await store.load(tid)
    assert trace is not None
    assert trace.resumed_from_step == 0
    assert [e.payload for e in trace.superseded_events] == [2, 3]


async def test_resume_of_an_unknown_trace_is_trace_not_found(store: PersistenceStore) -> None:
    with pytest.raises(TraceNotFound):
        await chain(Recorder()).resume(new_trace_id(), store=store)
    assert await store.get_lease("nothing") is None


async def test_a_trace_of_another_pipeline_is_refused(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 1, circuit="other")
    with pytest.raises(CircuitMismatch):
        await chain(Recorder()).resume(tid, store=store)
    assert await store.get_lease(tid) is None


async def test_another_version_needs_a_migration(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 2, version="0.9")
    rec = Recorder()
    with pytest.raises(VersionMismatch, match=r"version '0.9'.*migrate_from"):
        await chain(rec).resume(tid, store=store)
    assert rec.calls == []


async def test_a_restart_migration_reruns_from_the_first_step(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 2, version="0.9")
    rec = Recorder()
    axon = chain(rec).migrate_from("0.9", restart=True, transform=lambda v: 0)
    result = await axon.resume(tid, store=store)
    assert (rec.nodes, result.value, result.resumed) == (["a", "b", "c", "d"], 4, True)


async def test_a_migrated_trace_that_crashes_again_does_not_rerun_new_checkpoints(
    store: PersistenceStore,
) -> None:
    # needs each checkpoint's own schematic_version: the new version's checkpoints
    # must not look like the old version's, or the migration would restart again
    tid = new_trace_id()
    await crashed_after(store, tid, 2, version="0.9")
    rec = Recorder()

    def crash_in_b(value: Any, ctx: StepContext) -> Any:
        raise KeyboardInterrupt  # the migrated run dies in step b

    dying = Axon("chain", version="1", auto_complete=False).then(rec.step("a"))
    dying.then(crash_in_b, name="b").then(rec.step("c")).then(rec.step("d"))
    with pytest.raises(KeyboardInterrupt):
        await dying.migrate_from("0.9", restart=True, transform=lambda v: 0).resume(
            tid, store=store
        )
    assert rec.nodes == ["a"]
    result = await chain(rec).migrate_from("0.9", restart=True).resume(tid, store=store)
    assert (rec.nodes, result.value) == (["a", "b", "c", "d"], 4)


async def test_a_migration_can_map_to_a_named_step(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await crashed_after(store, tid, 2, version="0.9")
    rec = Recorder()
    result = await chain(rec).migrate_from("0.9", at="d").resume(tid, store=store)
    assert rec.calls == [("d", f"{tid}:2", 1, 2)]
    assert result.value == 3


async def test_a_faulted_open_trace_resumes_into_compensation(store: PersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, "a", 1))
    fault = Outcome.fault("out_of_stock", "none left")
    await store.append(envelope(tid, 1, "b", fault.checkpoint_payload(), kind=OutcomeKind.FAULT))
    undone: list[str] = []
    rec = Recorder()
    axon = chain(rec)
    axon.compensation = lambda c: undone.append(c.fault_kind)
    result = await axon.resume(tid, store=store)
    assert (rec.calls, undone, result.completion) == (
        [],
        ["out_of_stock"],
        CompletionState.COMPENSATED,
    )
    assert result.outcome.fault_kind == "out_of_stock"
