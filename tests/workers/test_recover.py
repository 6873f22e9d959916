"""`recover` in one process: what it resumes, skips, reports and leaves alone (issue 6)."""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict
from typing import Any

import orjson
import pytest

from ranvier import (
    CheckpointPolicy,
    CompletionState,
    InMemoryPersistenceStore,
    InvalidInput,
    Lease,
    RecoveryAction,
    StepContext,
    recover,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import FAST_RETRY, StoreProxy
from tests.workers.fleet import STEPS, checkpoint, new_ids, pipeline, seed


def noop(ctx: StepContext, value: Any) -> None:
    return None


async def _completions(store: PersistenceStore, ids: list[str]) -> list[CompletionState | None]:
    return [t.completion if (t := await store.load(i)) else None for i in ids]


async def test_recover_resumes_each_interrupted_trace_after_its_last_checkpoint(
    store: PersistenceStore,
) -> None:
    ids = new_ids(12)
    first = await seed(store, ids, random.Random(6))
    ran: list[str] = []
    axon = pipeline(lambda ctx, value: ran.append(ctx.idempotency_key))
    report = await recover(store, [axon], concurrency=3, batch_size=5)
    assert (report.resumed, report.skipped, report.unknown, report.failed) == (12, 0, 0, 0)
    assert sorted(report.ids(RecoveryAction.RESUMED)) == ids
    assert sorted(ran) == sorted(f"{t}:{s}" for t, k in first.items() for s in range(k, 5))
    for trace_id in ids:
        trace = await store.load(trace_id)
        assert trace is not None and trace.completion is CompletionState.SUCCESS
        assert (len(trace.events), trace.events[-1].payload) == (5, {"n": 5})
        assert await store.get_lease(trace_id) is None
    again = await recover(store, [axon])
    assert (again.resumed, again.passes) == (0, 1)


async def test_traces_of_unknown_circuits_are_reported_and_untouched(
    store: PersistenceStore,
) -> None:
    ids = new_ids(2, "billing")
    for trace_id in ids:
        await store.append(checkpoint(trace_id, 0, circuit="billing"))
    before = [await store.load(t) for t in ids]
    report = await recover(store, [pipeline(noop)])
    assert (report.unknown, report.resumed) == (2, 0)
    assert sorted(report.ids("unknown")) == ids
    assert "no pipeline named 'billing'" in report.traces[0].reason
    assert [await store.load(t) for t in ids] == before
    assert [await store.get_lease(t) for t in ids] == [None, None]


async def test_traces_of_a_version_without_migration_are_reported_and_untouched(
    store: PersistenceStore,
) -> None:
    ids = new_ids(3, "old")
    await seed(store, ids, random.Random(1), version="0")
    before = [await store.load(t) for t in ids]
    ran: list[str] = []
    report = await recover(store, [pipeline(lambda c, v: ran.append(c.node_id))])
    assert (report.unknown, report.resumed, ran) == (3, 0, [])
    assert all("migrate_from('0'" in t.reason for t in report.traces)
    assert [await store.load(t) for t in ids] == before

    migrating = pipeline(noop).migrate_from("0", restart=True)
    report = await recover(store, [migrating])
    assert report.resumed == 3
    assert await _completions(store, ids) == [CompletionState.SUCCESS] * 3


async def test_a_trace_driven_by_a_live_worker_is_left_to_it(store: PersistenceStore) -> None:
    held, free = new_ids(2)
    await seed(store, [held, free], random.Random(2))
    lease = await store.acquire_lease(held, "worker-elsewhere", 60_000)
    report = await recover(store, [pipeline(noop)])
    assert [t.trace_id for t in report.traces] == [free]
    assert await _completions(store, [held, free]) == [None, CompletionState.SUCCESS]
    assert await store.get_lease(held) == lease


class RivalFirst(StoreProxy):
    """Another worker takes (and maybe finishes) each trace just before we try."""

    def __init__(self, inner: PersistenceStore, *, finish: bool) -> None:
        super().__init__(inner)
        self.finish = finish

    async def acquire_lease(self, trace_id: str, holder: str, ttl_ms: int) -> Lease | None:
        inner = self._inner
        if self.finish:
            await inner.complete(trace_id, CompletionState.SUCCESS)
        else:
            assert await inner.acquire_lease(trace_id, "rival", 60_000) is not None
        return await inner.acquire_lease(trace_id, holder, ttl_ms)


@pytest.mark.parametrize(
    ("finish", "reason"),
    [(False, "another worker holds its lease"), (True, "completed meanwhile")],
)
async def test_a_trace_taken_or_finished_by_another_worker_meanwhile_is_skipped(
    store: PersistenceStore, finish: bool, reason: str
) -> None:
    ids = new_ids(2)
    await seed(store, ids, random.Random(3))
    ran: list[str] = []
    rival = RivalFirst(store, finish=finish)
    report = await recover(rival, [pipeline(lambda c, v: ran.append(c.node_id))])  # type: ignore[arg-type]
    assert (report.skipped, report.resumed, ran) == (2, 0, [])
    assert {t.reason for t in report.traces} == {reason}
    holders = [lease.holder if (lease := await store.get_lease(t)) else None for t in ids]
    assert holders == ([None, None] if finish else ["rival", "rival"])


class CountingLists(StoreProxy):
    def __init__(self, inner: PersistenceStore) -> None:
        super().__init__(inner)
        self.limits: list[int] = []

    async def list_traces(self, **kw: Any) -> Any:
        self.limits.append(kw["limit"])
        return await self._inner.list_traces(**kw)


async def test_concurrency_and_batch_size_bound_the_work(store: PersistenceStore) -> None:
    ids = new_ids(12)
    await seed(store, ids, random.Random(4))
    inside: set[str] = set()
    most = 0

    def enter(ctx: StepContext, value: Any) -> None:
        nonlocal most
        inside.add(ctx.trace_id)
        most = max(most, len(inside))

    def leave(value: Any, ctx: StepContext) -> Any:
        inside.discard(ctx.trace_id)
        return value

    axon = pipeline(enter, delay_s=0.02).then(leave)
    proxy = CountingLists(store)
    report = await recover(proxy, [axon], concurrency=3, batch_size=5)  # type: ignore[arg-type]
    assert report.resumed == 12
    assert most == 3
    assert proxy.limits[:3] == [5, 5, 5]


async def test_watch_mode_resumes_newly_interrupted_traces_until_stopped(
    store: PersistenceStore,
) -> None:
    stop = asyncio.Event()
    axon = pipeline(noop)
    task = asyncio.create_task(
        recover(store, [axon], watch=True, poll_interval=0.05, stop=stop, holder="watcher")
    )
    ids = new_ids(5)
    for batch in (ids[:3], ids[3:]):
        await asyncio.sleep(0.1)
        await seed(store, batch, random.Random(5))
        await _eventually_completed(store, batch)
    stop.set()
    report = await asyncio.wait_for(task, 10)
    assert sorted(report.ids("resumed")) == ids
    assert report.passes >= 2


async def _eventually_completed(store: PersistenceStore, ids: list[str]) -> None:
    for _ in range(400):
        if None not in await _completions(store, ids):
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"not completed: {await _completions(store, ids)}")


async def test_a_resume_that_cannot_write_is_reported_failed_and_stays_resumable(
    store: PersistenceStore,
) -> None:
    (trace_id,) = new_ids(1)
    await seed(store, [trace_id], random.Random(7))
    broken = StoreProxy(store)
    broken.fail_always.add("append")
    axon = pipeline(noop, checkpoint=CheckpointPolicy(retry=FAST_RETRY))
    report = await recover(broken, [axon])  # type: ignore[arg-type]
    assert (report.failed, report.resumed) == (1, 0)
    assert report.traces[0].reason.startswith("unrecorded")
    assert await _completions(store, [trace_id]) == [None]
    assert await store.get_lease(trace_id) is None
    assert (await recover(store, [axon])).resumed == 1


async def test_cancelling_recover_lets_the_running_resumes_finish(
    store: PersistenceStore,
) -> None:
    ids = new_ids(3)
    await seed(store, ids, random.Random(8))
    started = asyncio.Event()
    axon = pipeline(lambda c, v: started.set(), delay_s=0.05)
    task = asyncio.create_task(recover(store, [axon]))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    done = [c for c in await _completions(store, ids) if c is not None]
    assert done and set(done) == {CompletionState.SUCCESS}  # finished, never CANCELLED


async def test_the_report_reads_well_and_serialises() -> None:
    store = InMemoryPersistenceStore()
    await store.append(checkpoint("lost-1", 0, circuit="billing"))
    await seed(store, ["ok-1"], random.Random(9))
    report = await recover(store, [pipeline(noop)])
    text = str(report)
    assert text.splitlines()[0] == (
        "recover: 1 resumed, 0 skipped, 1 unknown, 0 failed, 0 poisoned (1 pass)"
    )
    assert "lost-1 (billing)" in text
    data = orjson.loads(orjson.dumps(asdict(report)))
    assert {t["action"] for t in data["traces"]} == {"resumed", "unknown"}


@pytest.mark.parametrize("kwargs", [{"concurrency": 0}, {"batch_size": 0}, {"poll_interval": 0}])
async def test_recover_checks_its_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        await recover(InMemoryPersistenceStore(), [pipeline(noop)], **kwargs)


async def test_recover_needs_distinct_pipelines() -> None:
    with pytest.raises(InvalidInput, match="two pipelines named 'fleet'"):
        await recover(InMemoryPersistenceStore(), [pipeline(noop), pipeline(noop, version="2")])
    with pytest.raises(InvalidInput, match="at least one"):
        await recover(InMemoryPersistenceStore(), [])
    assert len(STEPS) == 5
