"""Compensation: claimed before it runs, at most once per fault key (issue 5, item 5)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY

from ranvier import (
    Axon,
    CompensationContext,
    CompensationResult,
    CompensationState,
    CompletionState,
    InvalidInput,
    Outcome,
    OutcomeKind,
    RetryPolicy,
    RunStatus,
    StepContext,
    compensate,
)
from ranvier.ops.timeline import compensation_failed
from ranvier.runtime import compensation_key
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import envelope, new_trace_id


def out_of_stock(value: Any, ctx: StepContext) -> Outcome:
    return Outcome.fault("out_of_stock", "no items left")


def order_pipeline(**kw: Any) -> Axon:
    return (
        Axon("chain", version="1", **kw)
        .then(lambda v, ctx: v, name="a")
        .then(out_of_stock, name="b")
        .then(lambda v, ctx: v, name="c")
    )


class Hook:
    def __init__(self, fail_times: int = 0) -> None:
        self.calls: list[CompensationContext] = []
        self.fail_times = fail_times

    async def __call__(self, context: CompensationContext) -> None:
        self.calls.append(context)
        if len(self.calls) <= self.fail_times:
            raise RuntimeError("refund service down")


async def test_a_fault_runs_the_hook_once_and_completes_compensated(
    store: PersistenceStore,
) -> None:
    tid, hook = new_trace_id(), Hook()
    result = await order_pipeline(compensation=hook).run(1, store=store, trace_id=tid)
    assert result.completion is CompletionState.COMPENSATED
    assert [(c.trace_id, c.circuit, c.fault_kind, c.fault_step) for c in hook.calls] == [
        (tid, "chain", "out_of_stock", 1)
    ]
    trace = await store.load(tid)
    assert trace is not None
    assert [e.outcome_kind for e in trace.events] == [
        OutcomeKind.NEXT,
        OutcomeKind.FAULT,
        OutcomeKind.COMPENSATED,
    ]
    record = await store.compensations.get(f"{tid}:chain:out_of_stock")
    assert record is not None and record.state is CompensationState.COMPENSATED


async def test_an_already_compensated_key_does_not_run_the_hook_again(
    store: PersistenceStore,
) -> None:
    tid, hook = new_trace_id(), Hook()
    key = compensation_key(tid, "chain", "out_of_stock")
    await store.compensations.mark_compensated(key)  # e.g. the run died right after the hook
    result = await order_pipeline(compensation=hook).run(1, store=store, trace_id=tid)
    assert (hook.calls, result.completion) == ([], CompletionState.COMPENSATED)


async def test_an_unfinished_claim_is_left_to_the_operator(store: PersistenceStore) -> None:
    tid, hook = new_trace_id(), Hook()
    await store.append(envelope(tid, 0, "a", 1))
    fault = Outcome.fault("out_of_stock").checkpoint_payload()
    await store.append(envelope(tid, 1, "b", fault, kind=OutcomeKind.FAULT))
    key = compensation_key(tid, "chain", "out_of_stock")
    assert await store.compensations.claim(key)  # a worker claimed it, then died
    result = await order_pipeline(compensation=hook).resume(tid, store=store)
    assert (result.status, result.completion, hook.calls) == (RunStatus.COMPENSATING, None, [])
    assert [r.key for r in await store.compensations.list_unfinished()] == [key]
    trace = await store.load(tid)
    assert trace is not None and trace.completion is None

    assert await store.compensations.release(key)  # the operator decides to run it again
    result = await order_pipeline(compensation=hook).resume(tid, store=store)
    assert (result.completion, len(hook.calls)) == (CompletionState.COMPENSATED, 1)


async def test_the_hook_is_retried_then_the_trace_completes_as_fault(
    store: PersistenceStore,
) -> None:
    retry = RetryPolicy(attempts=2, base_delay_s=0.001)
    hook = Hook(fail_times=5)
    result = await order_pipeline(compensation=hook, compensation_retry=retry).run(1, store=store)
    assert (result.completion, len(hook.calls)) == (CompletionState.FAULT, 2)
    record = await store.compensations.get(f"{result.trace_id}:chain:out_of_stock")
    assert record is not None and record.state is CompensationState.CLAIMED


async def test_a_hook_that_recovers_within_its_retries_compensates(
    store: PersistenceStore,
) -> None:
    hook = Hook(fail_times=1)
    retry = RetryPolicy(attempts=3, base_delay_s=0.001)
    result = await order_pipeline(compensation=hook, compensation_retry=retry).run(1, store=store)
    assert (result.completion, len(hook.calls)) == (CompletionState.COMPENSATED, 2)


async def test_without_a_hook_a_fault_completes_as_fault(store: PersistenceStore) -> None:
    result = await order_pipeline().run(1, store=store)
    assert result.completion is CompletionState.FAULT


async def test_auto_compensation_off_then_compensate_by_hand(store: PersistenceStore) -> None:
    hook = Hook()
    axon = order_pipeline(compensation=hook, auto_compensate=False)
    result = await axon.run(1, store=store)
    assert (result.completion, hook.calls) == (CompletionState.FAULT, [])
    outcome = await compensate(store, result.trace_id, hook)
    assert outcome is CompensationResult.COMPENSATED
    again = await compensate(store, result.trace_id, hook)
    assert again is CompensationResult.ALREADY_COMPENSATED
    trace = await store.load(result.trace_id)
    assert trace is not None and trace.completion is CompletionState.COMPENSATED
    assert len(hook.calls) == 1


async def test_a_sync_hook_works_too(store: PersistenceStore) -> None:
    seen: list[str] = []
    result = await order_pipeline(compensation=lambda c: seen.append(c.fault_kind)).run(
        1, store=store
    )
    assert (result.completion, seen) == (CompletionState.COMPENSATED, ["out_of_stock"])


async def test_a_hook_given_per_call_is_refused_with_the_pipeline_form(
    store: PersistenceStore,
) -> None:
    with pytest.raises(InvalidInput, match=r"Axon\(\.\.\., compensation=hook\)"):
        await order_pipeline().run(1, store=store, compensation=Hook())  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="compensation= is not taken per call"):
        await order_pipeline().resume("t", store=store, compensation=Hook())  # type: ignore[arg-type]
    assert (await store.list_traces()).items == ()


async def test_a_failing_hook_is_logged_recorded_and_counted(
    store: PersistenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    retry = RetryPolicy(attempts=2, base_delay_s=0.001)
    before = _failed_count()
    with caplog.at_level(logging.WARNING, logger="ranvier.runtime"):
        result = await order_pipeline(
            compensation=Hook(fail_times=5), compensation_retry=retry
        ).run(1, store=store)
    assert result.completion is CompletionState.FAULT
    assert result.outcome.fault_kind == "out_of_stock"  # the run's fault, not the hook's
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and result.trace_id in errors[0].getMessage()
    assert errors[0].exc_info is not None and "refund service down" in caplog.text
    trace = await store.load(result.trace_id)
    assert trace is not None and compensation_failed(trace)
    marker = trace.events[-1]
    assert (marker.step, marker.node_id, marker.outcome_kind) == (2, None, OutcomeKind.FAULT)
    assert marker.payload["kind"] == "compensation_failed"
    assert "RuntimeError: refund service down" in marker.payload["traceback"]
    assert _failed_count() == before + 1
    plain = await order_pipeline().run(1, store=store)
    loaded = await store.load(plain.trace_id)
    assert loaded is not None and not compensation_failed(loaded)


async def test_a_trace_resumed_after_its_hook_failed_completes_as_fault_without_rerunning(
    store: PersistenceStore,
) -> None:
    tid, hook = new_trace_id(), Hook(fail_times=5)
    retry = RetryPolicy(attempts=1, base_delay_s=0.001)
    axon = order_pipeline(compensation=hook, compensation_retry=retry, auto_complete=False)
    first = await axon.run(1, store=store, trace_id=tid)
    assert first.completion is None and len(hook.calls) == 1  # died before completing
    again = await order_pipeline(compensation=hook).resume(tid, store=store)
    assert (again.completion, len(hook.calls)) == (CompletionState.FAULT, 1)


def _failed_count() -> float:
    value = REGISTRY.get_sample_value(
        "ranvier_compensations_total", {"circuit": "chain", "result": "failed"}
    )
    return value or 0.0
