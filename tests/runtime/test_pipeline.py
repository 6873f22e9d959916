"""Pipelines: steps, outcomes and the checkpoint each step writes (issue 5, items 1-2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ranvier import (
    Axon,
    CompletionState,
    InvalidInput,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    RunStatus,
    StepContext,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import Recorder, chain, new_trace_id


async def test_the_ith_step_writes_checkpoint_i_with_its_output(store: PersistenceStore) -> None:
    rec = Recorder()
    result = await chain(rec).run(0, store=store, trace_id=new_trace_id())
    trace = await store.load(result.trace_id)
    assert trace is not None
    assert [(e.step, e.node_id, e.outcome_kind, e.payload) for e in trace.events] == [
        (0, "a", OutcomeKind.NEXT, 1),
        (1, "b", OutcomeKind.NEXT, 2),
        (2, "c", OutcomeKind.NEXT, 3),
        (3, "d", OutcomeKind.NEXT, 4),
    ]
    assert all(e.payload_hash for e in trace.events)
    assert trace.completion is CompletionState.SUCCESS
    assert (result.status, result.completion, result.value, result.steps_run) == (
        RunStatus.COMPLETED,
        CompletionState.SUCCESS,
        4,
        4,
    )


async def test_a_trace_id_is_generated_when_none_is_given(store: PersistenceStore) -> None:
    first = await chain(Recorder()).run(0, store=store)
    second = await chain(Recorder()).run(0, store=store)
    assert first.trace_id != second.trace_id
    assert await store.load(first.trace_id) is not None


async def test_context_carries_trace_step_node_and_idempotency_key(
    store: PersistenceStore,
) -> None:
    seen: list[StepContext] = []

    async def grab(value: Any, ctx: StepContext) -> Any:
        seen.append(ctx)
        return value

    tid = new_trace_id()
    axon = Axon("ctx", version="1").then(grab, name="one").then(grab, name="two")
    await axon.run(1, store=store, trace_id=tid, resources={"db": "pool"})
    assert [(c.trace_id, c.step, c.node_id, c.attempt) for c in seen] == [
        (tid, 0, "one", 1),
        (tid, 1, "two", 1),
    ]
    assert [c.idempotency_key for c in seen] == [f"{tid}:0", f"{tid}:1"]
    assert seen[0].resources == {"db": "pool"}


async def test_sync_and_async_steps_mix(store: PersistenceStore) -> None:
    async def double(value: int, ctx: StepContext) -> int:
        await asyncio.sleep(0)
        return value * 2

    def inc(value: int, ctx: StepContext) -> int:
        return value + 1

    result = await Axon("mix").then(double).then(inc).run(5, store=store)
    assert result.value == 11


async def test_an_exception_is_a_fault_and_later_steps_do_not_run(
    store: PersistenceStore,
) -> None:
    rec = Recorder()

    def explode(value: Any, ctx: StepContext) -> Any:
        raise ValueError("bad order")

    axon = Axon("boom").then(rec.step("a")).then(explode).then(rec.step("c"))
    result = await axon.run(0, store=store)
    assert result.completion is CompletionState.FAULT
    assert (result.outcome.kind, result.outcome.fault_kind) == (OutcomeKind.FAULT, "ValueError")
    assert result.outcome.message == "bad order"
    assert rec.nodes == ["a"]
    trace = await store.load(result.trace_id)
    assert trace is not None
    assert trace.events[-1].outcome_kind is OutcomeKind.FAULT
    payload = trace.events[-1].payload
    assert (payload["kind"], payload["message"]) == ("ValueError", "bad order")
    assert payload["traceback"].endswith("ValueError: bad order\n")


async def test_branch_ends_the_run_successfully(store: PersistenceStore) -> None:
    rec = Recorder()
    axon = (
        Axon("br")
        .then(lambda v, ctx: Outcome.branch("express", v + 100), name="route")
        .then(rec.step("never"))
    )
    result = await axon.run(1, store=store)
    assert result.completion is CompletionState.SUCCESS
    assert (result.outcome.kind, result.outcome.target, result.value) == (
        OutcomeKind.BRANCH,
        "express",
        101,
    )
    assert rec.calls == []


async def test_jump_continues_at_the_named_step_with_increasing_checkpoints(
    store: PersistenceStore,
) -> None:
    def loop(value: int, ctx: StepContext) -> Any:
        return Outcome.jump("inc", value) if value < 3 else value

    axon = Axon("loop").then(lambda v, ctx: v + 1, name="inc").then(loop)
    result = await axon.run(0, store=store)
    assert result.value == 3
    trace = await store.load(result.trace_id)
    assert trace is not None
    assert [(e.step, e.node_id, e.outcome_kind) for e in trace.events] == [
        (0, "inc", OutcomeKind.NEXT),
        (1, "loop", OutcomeKind.JUMP),
        (2, "inc", OutcomeKind.NEXT),
        (3, "loop", OutcomeKind.JUMP),
        (4, "inc", OutcomeKind.NEXT),
        (5, "loop", OutcomeKind.NEXT),
    ]
    assert trace.events[1].payload == {"jump": "inc", "value": 1}


async def test_jump_to_an_unknown_step_is_a_fault(store: PersistenceStore) -> None:
    axon = Axon("lost").then(lambda v, ctx: Outcome.jump("nowhere", v), name="go")
    result = await axon.run(0, store=store)
    assert (result.completion, result.outcome.fault_kind) == (CompletionState.FAULT, "InvalidJump")


async def test_emit_records_the_event_and_continues(store: PersistenceStore) -> None:
    axon = (
        Axon("em")
        .then(lambda v, ctx: Outcome.emit("paid", v), name="pay")
        .then(lambda v, ctx: v * 10, name="ship")
    )
    result = await axon.run(2, store=store)
    assert result.value == 20
    trace = await store.load(result.trace_id)
    assert trace is not None
    assert trace.events[0].outcome_kind is OutcomeKind.EMIT
    assert trace.events[0].payload == {"event": "paid", "value": 2}


async def test_a_non_json_output_is_a_fault_not_a_crash(store: PersistenceStore) -> None:
    axon = Axon("obj").then(lambda v, ctx: object(), name="bad")
    result = await axon.run(0, store=store)
    assert (result.completion, result.outcome.fault_kind) == (CompletionState.FAULT, "InvalidInput")


async def test_step_retry_policy_reruns_with_the_next_attempt(store: PersistenceStore) -> None:
    attempts: list[int] = []

    def flaky(value: int, ctx: StepContext) -> int:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError("try again")
        return value

    axon = Axon("retry").then(flaky, retry=RetryPolicy(attempts=3, base_delay_s=0.001))
    result = await axon.run(7, store=store)
    assert (result.completion, result.value, attempts) == (CompletionState.SUCCESS, 7, [1, 2, 3])


def test_step_names_are_unique_and_a_pipeline_needs_steps() -> None:
    axon = Axon("dup").then(lambda v, ctx: v, name="x")
    with pytest.raises(InvalidInput, match="already has a step named 'x'"):
        axon.then(lambda v, ctx: v, name="x")
    with pytest.raises(InvalidInput, match="no steps"):
        Axon("empty").index_of("x")


def test_run_sync_runs_from_blocking_code() -> None:
    result = Axon("sync").then(lambda v, ctx: v + 1, name="inc").run_sync(1, store="memory://")
    assert (result.completion, result.value) == (CompletionState.SUCCESS, 2)
