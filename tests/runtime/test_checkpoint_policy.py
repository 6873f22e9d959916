"""Checkpoint failures: retry, then halt or continue (runbook Scenarios B, C; item 4)."""

from __future__ import annotations

import logging

import pytest

from ranvier import (
    CheckpointPolicy,
    CompletionState,
    InMemoryPersistenceStore,
    OnFailure,
    RetryPolicy,
    RunStatus,
)
from ranvier.metrics import CHECKPOINT_FAILURES, CHECKPOINT_LATENCY
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import FAST_RETRY, Recorder, StoreProxy, chain, new_trace_id


def failures(circuit: str, adapter: str) -> float:
    return CHECKPOINT_FAILURES.labels(circuit, adapter)._value.get()  # type: ignore[no-any-return]


async def test_a_transient_failure_is_retried_and_the_run_goes_on(
    store: PersistenceStore,
) -> None:
    proxy = StoreProxy(store)
    proxy.fail["append"] = 2
    before = failures("chain", store.adapter)
    rec = Recorder()
    result = await chain(rec).run(0, store=proxy, trace_id=new_trace_id())  # type: ignore[arg-type]
    assert (result.completion, rec.nodes) == (CompletionState.SUCCESS, ["a", "b", "c", "d"])
    assert failures("chain", store.adapter) - before == 2
    assert proxy.calls["append"] == 4 + 2


async def test_halt_ends_the_run_as_fault_and_no_further_step_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = InMemoryPersistenceStore()
    proxy = StoreProxy(store)
    rec = Recorder()
    axon = chain(rec, name="halting")
    tid = new_trace_id()
    await axon.run(0, store=store, trace_id=tid + "-warm")
    rec.calls.clear()

    proxy.fail["append"] = 1000
    before = failures("halting", "memory")
    with caplog.at_level(logging.ERROR, logger="ranvier.runtime"):
        result = await axon.run(0, store=proxy, trace_id=tid)  # type: ignore[arg-type]
    assert rec.nodes == ["a"]
    assert result.status is RunStatus.UNRECORDED
    assert result.outcome.fault_kind == "persistence_unavailable"
    assert result.outcome.message is not None
    assert result.outcome.message.startswith("persistence unavailable: ")
    assert failures("halting", "memory") - before == 6  # 3 for the step, 3 for its Fault
    assert f"trace_id={tid} step=0" in caplog.text


async def test_halt_records_the_fault_when_the_store_comes_back(store: PersistenceStore) -> None:
    proxy = StoreProxy(store)
    proxy.fail["append"] = 3  # the step's checkpoint fails 3 times; the Fault event lands
    rec = Recorder()
    result = await chain(rec).run(0, store=proxy, trace_id=new_trace_id())  # type: ignore[arg-type]
    assert (rec.nodes, result.completion) == (["a"], CompletionState.FAULT)
    assert result.outcome.fault_kind == "persistence_unavailable"


async def test_continue_runs_on_without_the_checkpoint(store: PersistenceStore) -> None:
    proxy = StoreProxy(store)
    proxy.fail["append"] = 3  # step a's checkpoint is given up
    rec = Recorder()
    policy = CheckpointPolicy(retry=FAST_RETRY, on_failure=OnFailure.CONTINUE)
    result = await chain(rec, checkpoint=policy).run(0, store=proxy, trace_id=new_trace_id())  # type: ignore[arg-type]
    assert (rec.nodes, result.completion) == (["a", "b", "c", "d"], CompletionState.SUCCESS)
    trace = await store.load(result.trace_id)
    assert trace is not None
    assert [e.step for e in trace.events] == [1, 2, 3]


async def test_only_store_unavailable_is_retried(store: PersistenceStore) -> None:
    proxy = StoreProxy(store)
    rec = Recorder()
    # a step output that is not JSON: InvalidInput, answered at once, never retried
    axon = chain(rec)
    axon.then(lambda v, ctx: {1, 2}, name="setty")
    result = await axon.run(0, store=proxy, trace_id=new_trace_id())  # type: ignore[arg-type]
    assert result.outcome.fault_kind == "InvalidInput"
    assert proxy.calls["append"] == 5 + 1


def test_retry_policy_backs_off_exponentially() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, [policy.delay(n) for n in range(3)]) == (3, [0.1, 0.2, 0.4])


async def test_every_checkpoint_is_timed(store: PersistenceStore) -> None:
    histogram = CHECKPOINT_LATENCY.labels("chain", store.adapter)
    before = _count(histogram)
    await chain(Recorder()).run(0, store=store)
    assert _count(histogram) - before == 4


def _count(histogram: object) -> float:
    for metric in histogram.collect():  # type: ignore[attr-defined]
        for sample in metric.samples:
            if sample.name.endswith("_count"):
                return float(sample.value)
    raise AssertionError("no _count sample")


def test_the_metrics_are_exposed_under_their_documented_names() -> None:
    from prometheus_client import generate_latest

    CHECKPOINT_FAILURES.labels("exposed", "memory")
    text = generate_latest().decode()
    assert 'ranvier_checkpoint_failures_total{adapter="memory",circuit="exposed"}' in text
    assert "ranvier_checkpoint_latency_seconds_bucket" in text
