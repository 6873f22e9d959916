"""What every store declares and does beyond the core contract: counts in the store,
batched loads, `describe`, and the ledger and lease tokens that backups carry."""

from __future__ import annotations

import asyncio

import pytest

from ranvier import (
    CompensationRecord,
    CompensationState,
    CompletionState,
    InvalidInput,
    LeaseLost,
    TraceStatus,
)
from ranvier.model import LeaseToken
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, new_trace, new_trace_id, wait_past

LONG = 60_000


async def test_counts_by_status_are_exact_and_include_zeros(store: PersistenceStore) -> None:
    before = await store.count_traces_by_status()
    assert set(before) == {s for s in TraceStatus if s is not TraceStatus.COMPLETED}
    await new_trace(store, completion=CompletionState.SUCCESS)
    await new_trace(store, completion=CompletionState.SUCCESS)
    await new_trace(store, completion=CompletionState.FAULT)
    await new_trace(store)  # interrupted
    running = await new_trace(store)
    assert await store.acquire_lease(running, "w1", LONG) is not None
    after = await store.count_traces_by_status()
    delta = {s: after[s] - before[s] for s in after}
    assert delta == {
        TraceStatus.RUNNING: 1,
        TraceStatus.INTERRUPTED: 1,
        TraceStatus.SUCCEEDED: 2,
        TraceStatus.FAULTED: 1,
        TraceStatus.COMPENSATED: 0,
        TraceStatus.CANCELLED: 0,
    }


async def test_count_completed_before_is_what_purge_removes(store: PersistenceStore) -> None:
    old = [await new_trace(store, completion=CompletionState.SUCCESS) for _ in range(3)]
    cutoff = await store.now_ms()
    await wait_past(store, cutoff)
    await new_trace(store, completion=CompletionState.SUCCESS)
    await new_trace(store)
    counted = await store.count_completed_before(cutoff + 1)
    assert counted >= 3
    assert await store.purge_completed(cutoff + 1) == counted
    assert [await store.load(t) for t in old] == [None, None, None]
    assert await store.count_completed_before(cutoff + 1) == 0


async def test_purge_with_a_limit_removes_at_most_that_many_earliest_first(
    store: PersistenceStore,
) -> None:
    ids = []
    for _ in range(5):
        ids.append(await new_trace(store, completion=CompletionState.SUCCESS))
        await wait_past(store, await store.now_ms())
    cutoff = await store.now_ms() + 1
    assert await store.purge_completed(cutoff, batch_size=2, limit=3) == 3
    assert [await store.load(t) is None for t in ids] == [True, True, True, False, False]
    assert await store.purge_completed(cutoff, limit=10) == 2
    with pytest.raises(InvalidInput, match="limit"):
        await store.purge_completed(cutoff, limit=0)


async def test_load_many_returns_the_stored_ones(store: PersistenceStore) -> None:
    ids = [await new_trace(store, steps=2) for _ in range(3)]
    found = await store.load_many([ids[2], "missing-trace", ids[0]])
    assert sorted(t.trace_id for t in found) == sorted([ids[0], ids[2]])
    for trace in found:
        assert trace == await store.load(trace.trace_id)
    assert await store.load_many([]) == []


async def test_describe_names_the_adapter_and_its_schema(store: PersistenceStore) -> None:
    description = await store.describe()
    assert description.adapter == store.adapter
    assert description.location and "***" not in description.location.split("@")[-1]
    if store.capabilities.durable:
        assert description.schema_version == description.latest_schema_version
        assert description.objects


async def test_the_ledger_pages_in_key_order_and_imports_without_going_back(
    store: PersistenceStore,
) -> None:
    comp = store.compensations
    tag = new_trace_id("led")
    keys = [f"{tag}:orders:k{i}" for i in range(5)]
    await comp.claim(keys[0])
    for key in keys[1:]:
        await comp.mark_compensated(key)
    mine: list[CompensationRecord] = []
    after: str | None = None
    while True:
        page = await comp.list_records(after=after, limit=2)
        mine += [r for r in page if r.key.startswith(tag)]
        if len(page) < 2:
            break
        after = page[-1].key
    assert [r.key for r in mine] == keys
    claimed = mine[0]
    assert claimed.state is CompensationState.CLAIMED
    done = CompensationRecord(
        key=claimed.key,
        state=CompensationState.COMPENSATED,
        claimed_at_ms=claimed.claimed_at_ms,
        compensated_at_ms=claimed.claimed_at_ms + 5,
    )
    assert await comp.import_record(done) is True
    assert await comp.get(claimed.key) == done
    assert await comp.import_record(claimed) is False  # never back to claimed
    fresh = CompensationRecord(
        key=f"{tag}:orders:new", state=CompensationState.CLAIMED, claimed_at_ms=7
    )
    assert await comp.import_record(fresh) is True
    assert await comp.claim(fresh.key) is False  # a restored claim blocks the hook
    with pytest.raises(InvalidInput, match="compensated_at_ms"):
        await comp.import_record(
            CompensationRecord(key="x", state=CompensationState.COMPENSATED, claimed_at_ms=1)
        )


async def test_raised_lease_tokens_only_grow_and_fence_out_older_ones(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    first = await store.acquire_lease(tid, "w1", LONG)
    assert first is not None
    await store.raise_lease_token(tid, first.token + 100)
    with pytest.raises(LeaseLost):
        await store.append(envelope(tid, 1), fence=first.token)
    second = await store.acquire_lease(tid, "w2", LONG)
    assert second is not None and second.token > first.token + 100
    await store.raise_lease_token(tid, 1)  # never lowers
    assert await store.get_lease(tid) == second
    fresh = new_trace_id("tok")
    await store.raise_lease_token(fresh, 41)
    lease = await store.acquire_lease(fresh, "w3", LONG)
    assert lease is not None and lease.token == 42
    tokens = {t.trace_id: t.token for t in await _all_tokens(store)}
    assert tokens[tid] == second.token and tokens[fresh] == 42
    with pytest.raises(InvalidInput, match="token"):
        await store.raise_lease_token(fresh, 0)


async def _all_tokens(store: PersistenceStore) -> list[LeaseToken]:
    found: list[LeaseToken] = []
    after: str | None = None
    while True:
        page = await store.list_lease_tokens(after=after, limit=50)
        found += page
        if len(page) < 50:
            return found
        after = page[-1].trace_id


async def test_counts_stay_exact_under_concurrent_writes(store: PersistenceStore) -> None:
    before = (await store.count_traces_by_status())[TraceStatus.SUCCEEDED]
    await asyncio.gather(
        *(new_trace(store, completion=CompletionState.SUCCESS) for _ in range(10))
    )
    after = (await store.count_traces_by_status())[TraceStatus.SUCCEEDED]
    assert after - before == 10
