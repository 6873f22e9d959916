"""The runtime holds the trace's lease for every run (issue 6, item 2)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from ranvier import (
    Axon,
    CompletionState,
    InvalidInput,
    LeaseSettings,
    RunStatus,
    StepContext,
    StoreUnavailable,
    TraceBusy,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import Recorder, StoreProxy, chain, new_trace_id


async def test_the_lease_is_held_while_steps_run_and_released_after(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    held: list[Any] = []

    async def look(value: Any, ctx: StepContext) -> Any:
        held.append(await store.get_lease(ctx.trace_id))
        return value

    settings = LeaseSettings(holder="worker-1")
    await Axon("lease", lease=settings).then(look).run(1, store=store, trace_id=tid)
    assert held[0] is not None and held[0].holder == "worker-1"
    assert await store.get_lease(tid) is None


async def test_a_trace_whose_lease_is_held_elsewhere_is_busy(store: PersistenceStore) -> None:
    tid = new_trace_id()
    assert await store.acquire_lease(tid, "other-worker", 60_000) is not None
    rec = Recorder()
    with pytest.raises(TraceBusy):
        await chain(rec).run(0, store=store, trace_id=tid)
    assert rec.calls == []


async def test_a_completed_run_costs_one_lease_round_trip_whatever_its_length(
    store: PersistenceStore,
) -> None:
    proxy = StoreProxy(store)
    rec = Recorder()
    tid = new_trace_id()
    await chain(rec, "a b c d e f g h i j").run(0, store=proxy, trace_id=tid)  # type: ignore[arg-type]
    lease_calls = {k: v for k, v in proxy.calls.items() if "lease" in k}
    assert lease_calls == {"acquire_lease": 1}  # the fenced complete released it
    assert proxy.calls["append"] == 10
    assert await store.get_lease(tid) is None


async def test_a_run_that_does_not_complete_releases_its_lease(store: PersistenceStore) -> None:
    proxy = StoreProxy(store)
    tid = new_trace_id()
    result = await chain(Recorder(), "a b", auto_complete=False).run(
        0,
        store=proxy,  # type: ignore[arg-type]
        trace_id=tid,
    )
    assert (result.status, result.completion) == (RunStatus.COMPLETED, None)
    assert proxy.calls["release_lease"] == 1
    assert await store.get_lease(tid) is None


async def test_an_unrecorded_completion_releases_the_lease(store: PersistenceStore) -> None:
    proxy = StoreProxy(store)
    proxy.fail_always.add("complete")
    tid = new_trace_id()
    result = await chain(Recorder(), "a b").run(0, store=proxy, trace_id=tid)  # type: ignore[arg-type]
    assert (result.status, result.completion) == (RunStatus.UNRECORDED, None)
    assert proxy.calls["release_lease"] == 1
    assert await store.get_lease(tid) is None


class _LostReply(StoreProxy):
    """The first `complete` commits, then its reply is lost (an unknown outcome)."""

    def __getattr__(self, name: str) -> Any:
        call = super().__getattr__(name)
        if name != "complete":
            return call

        async def complete(*args: Any, **kwargs: Any) -> Any:
            await call(*args, **kwargs)
            if self.calls["complete"] == 1:
                raise StoreUnavailable("injected: the connection dropped after the commit")

        return complete


async def test_a_completion_retried_after_an_unknown_outcome_is_completed(
    store: PersistenceStore,
) -> None:
    proxy = _LostReply(store)
    tid = new_trace_id()
    result = await chain(Recorder(), "a b").run(0, store=proxy, trace_id=tid)  # type: ignore[arg-type]
    assert (result.status, result.completion) == (RunStatus.COMPLETED, CompletionState.SUCCESS)
    assert proxy.calls["complete"] == 2  # the retry was a no-op success, not LeaseLost
    assert proxy.calls["release_lease"] == 0
    assert await store.get_lease(tid) is None


async def test_a_long_step_keeps_its_lease_by_background_renewal(store: PersistenceStore) -> None:
    proxy = StoreProxy(store)

    async def long(value: Any, ctx: StepContext) -> Any:
        await asyncio.sleep(0.9)
        return value

    settings = LeaseSettings(ttl_ms=400, renew_every_ms=100)
    result = await Axon("long", lease=settings).then(long).run(1, store=proxy)  # type: ignore[arg-type]
    assert result.completion is CompletionState.SUCCESS
    assert proxy.calls["renew_lease"] >= 5


async def test_a_failed_renewal_stops_the_run_at_the_next_boundary(
    store: PersistenceStore,
) -> None:
    proxy = StoreProxy(store)
    proxy.fail_always.add("renew_lease")
    rec = Recorder()

    async def long(value: Any, ctx: StepContext) -> Any:
        await asyncio.sleep(0.3)
        return value

    settings = LeaseSettings(ttl_ms=5_000, renew_every_ms=100)
    axon = Axon("renewfail", lease=settings).then(long).then(rec.step("after"))
    tid = new_trace_id()
    result = await axon.run(1, store=proxy, trace_id=tid)  # type: ignore[arg-type]
    assert (result.status, result.completion) == (RunStatus.LEASE_LOST, None)
    assert rec.calls == []
    trace = await store.load(tid)
    assert trace is not None
    assert (len(trace.events), trace.completion) == (1, None)  # the step's checkpoint only
    writes = {k: v for k, v in proxy.calls.items() if k in ("complete", "release_lease")}
    assert writes == {}


async def test_a_worker_paused_past_its_lease_writes_nothing(store: PersistenceStore) -> None:
    tid = new_trace_id()
    rec = Recorder()
    pauses: list[int] = []

    def frozen(value: Any, ctx: StepContext) -> Any:
        if not pauses:
            pauses.append(1)
            time.sleep(0.4)  # blocks the loop: no renewal, the lease expires meanwhile
        return value

    settings = LeaseSettings(ttl_ms=150, renew_every_ms=100)
    axon = Axon("paused", lease=settings).then(rec.step("a")).then(frozen).then(rec.step("c"))
    result = await axon.run(1, store=store, trace_id=tid)
    assert result.status is RunStatus.LEASE_LOST
    assert rec.nodes == ["a"]
    trace = await store.load(tid)
    assert trace is not None
    assert ([e.node_id for e in trace.events], trace.completion) == (["a"], None)

    taken_over = await axon.resume(tid, store=store)  # another worker takes the trace over
    assert (taken_over.completion, rec.nodes) == (CompletionState.SUCCESS, ["a", "c"])


def test_lease_settings_are_checked() -> None:
    assert (LeaseSettings().ttl_ms, LeaseSettings().renew_every_ms) == (30_000, 10_000)
    with pytest.raises(InvalidInput):
        LeaseSettings(ttl_ms=1000, renew_every_ms=1000)
