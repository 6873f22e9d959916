"""Poison runs: a trace started `max_attempts` times without completing stops (item 5)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from ranvier import (
    Axon,
    CompletionState,
    LeaseSettings,
    RecoveryAction,
    StepContext,
    TracePoisoned,
    TraceStart,
    TraceStatus,
    cancel,
    recover,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import new_trace_id

SHORT = LeaseSettings(ttl_ms=60_000, renew_every_ms=20_000)


def _axon(calls: list[str], max_attempts: int = 3) -> Axon:
    def work(value: Any, ctx: StepContext) -> Any:
        calls.append(ctx.trace_id)
        return value

    return Axon("poisonous", max_attempts=max_attempts, lease=SHORT).then(work)


async def _crashed(store: PersistenceStore, times: int) -> str:
    """A trace whose runs died `times` times before their first checkpoint."""
    tid = new_trace_id("poison")
    start = TraceStart(circuit="poisonous", schematic_version="1", input={"x": 1})
    for _ in range(times):
        lease = await store.acquire_lease(tid, "dead-worker", 60_000, start=start)
        assert lease is not None
        await store.release_lease(lease)  # as if it expired
    return tid


def _poisoned_metric() -> float:
    value = REGISTRY.get_sample_value("ranvier_poisoned_traces_total", {"circuit": "poisonous"})
    return value or 0.0


async def test_recover_reports_a_poisoned_trace_and_leaves_it(store: PersistenceStore) -> None:
    calls: list[str] = []
    tid = await _crashed(store, 3)
    before = _poisoned_metric()
    report = await recover(store, [_axon(calls)])
    assert (report.poisoned, report.resumed, report.failed) == (1, 0, 0)
    assert report.ids(RecoveryAction.POISONED) == [tid]
    assert "poisoned" in str(report) and tid in str(report)
    assert calls == []
    trace = await store.load(tid)
    assert trace is not None and trace.attempts == 3 and trace.completion is None
    assert await store.get_lease(tid) is None  # not even taken
    assert _poisoned_metric() == before + 1
    listed = await store.list_traces(status=TraceStatus.INTERRUPTED, min_attempts=3)
    assert [s.trace_id for s in listed.items if s.circuit == "poisonous"] == [tid]


async def test_below_the_limit_recover_resumes_with_the_stored_input(
    store: PersistenceStore,
) -> None:
    calls: list[str] = []
    tid = await _crashed(store, 2)
    report = await recover(store, [_axon(calls)])
    assert report.ids(RecoveryAction.RESUMED) == [tid]
    trace = await store.load(tid)
    assert trace is not None and trace.completion is CompletionState.SUCCESS
    assert trace.events[0].payload == {"x": 1} and trace.attempts == 3


async def test_resume_refuses_a_poisoned_trace_unless_forced(store: PersistenceStore) -> None:
    calls: list[str] = []
    tid = await _crashed(store, 3)
    with pytest.raises(TracePoisoned, match="started 3 times"):
        await _axon(calls).resume(tid, store=store)
    assert calls == []
    result = await _axon(calls).resume(tid, store=store, force=True)
    assert result.completion is CompletionState.SUCCESS and calls == [tid]


async def test_a_poisoned_trace_can_be_cancelled_or_forked(store: PersistenceStore) -> None:
    calls: list[str] = []
    tid = await _crashed(store, 3)
    forked = await _axon(calls).fork(tid, store=store, at="work")
    assert forked.completion is CompletionState.SUCCESS and forked.value == {"x": 1}
    assert await cancel(store, tid)
    trace = await store.load(tid)
    assert trace is not None and trace.completion is CompletionState.CANCELLED


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        Axon("p", max_attempts=0)
