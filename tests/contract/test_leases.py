"""The rules of leases and fencing tokens, for every adapter."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from ranvier import CompletionState, InvalidInput, Lease, LeaseLost, TraceCompleted
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, must_load, new_trace, new_trace_id, wait_past

LONG = 60_000
SHORT = 150


async def _acquire(store: PersistenceStore, trace_id: str, holder: str, ttl: int = LONG) -> Lease:
    lease = await store.acquire_lease(trace_id, holder, ttl)
    assert lease is not None, f"{holder} should get the lease on {trace_id}"
    return lease


async def _expire(store: PersistenceStore, lease: Lease) -> None:
    await wait_past(store, lease.expires_at_ms)


async def test_acquire_returns_a_lease_that_expires_by_the_store_clock(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    before = await store.now_ms()
    lease = await _acquire(store, tid, "w1", 5_000)
    after = await store.now_ms()
    assert (lease.trace_id, lease.holder) == (tid, "w1")
    assert before + 5_000 <= lease.expires_at_ms <= after + 5_000
    assert await store.get_lease(tid) == lease


async def test_one_winner_among_concurrent_acquirers(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    results = await asyncio.gather(
        *(store.acquire_lease(tid, f"worker-{i}", LONG) for i in range(50))
    )
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert await store.get_lease(tid) == winners[0]


async def test_a_live_lease_cannot_be_taken_even_by_its_holder(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1")
    assert await store.acquire_lease(tid, "w1", LONG) is None
    assert await store.acquire_lease(tid, "w2", LONG) is None
    assert await store.get_lease(tid) == lease


async def test_tokens_grow_across_release_and_expiry(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    first = await _acquire(store, tid, "w1")
    assert await store.release_lease(first) is True
    second = await _acquire(store, tid, "w2", SHORT)
    assert second.token > first.token
    await _expire(store, second)
    third = await _acquire(store, tid, "w3")
    assert third.token > second.token


async def test_tokens_are_per_trace_and_leases_are_independent(store: PersistenceStore) -> None:
    a, b = await new_trace(store), await new_trace(store)
    lease_a = await _acquire(store, a, "w")
    lease_b = await _acquire(store, b, "w")
    assert await store.get_lease(a) == lease_a
    assert await store.get_lease(b) == lease_b
    await store.release_lease(lease_a)
    assert await store.get_lease(b) == lease_b


async def test_lease_on_a_trace_that_does_not_exist_yet(store: PersistenceStore) -> None:
    tid = new_trace_id()
    lease = await _acquire(store, tid, "w1")
    assert await store.load(tid) is None
    await store.append(envelope(tid, 0), fence=lease.token)
    await store.append(envelope(tid, 1), fence=lease.token)
    assert len((await must_load(store, tid)).events) == 2


async def test_renew_extends_a_live_lease(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1", 10_000)
    renewed = await store.renew_lease(lease, LONG)
    assert renewed.token == lease.token and renewed.holder == "w1"
    assert renewed.expires_at_ms > lease.expires_at_ms
    assert renewed.expires_at_ms >= await store.now_ms() + LONG - 5_000
    assert await store.get_lease(tid) == renewed


async def test_renew_keeps_the_lease_alive_past_its_first_expiry(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1", 600)
    renewed = await store.renew_lease(lease, LONG)
    await _expire(store, lease)
    assert await store.get_lease(tid) == renewed
    assert await store.acquire_lease(tid, "w2", LONG) is None
    await store.append(envelope(tid, 1), fence=lease.token)


async def test_renew_after_expiry_is_lease_lost(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, lease)
    with pytest.raises(LeaseLost):
        await store.renew_lease(lease, LONG)
    assert await store.get_lease(tid) is None


async def test_renew_after_another_holder_took_over_is_lease_lost(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, lease)
    newer = await _acquire(store, tid, "w2")
    with pytest.raises(LeaseLost):
        await store.renew_lease(lease, LONG)
    assert await store.get_lease(tid) == newer


async def test_renew_after_release_is_lease_lost(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1")
    await store.release_lease(lease)
    with pytest.raises(LeaseLost):
        await store.renew_lease(lease, LONG)


async def test_release_frees_the_lease_once(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1")
    assert await store.release_lease(lease) is True
    assert await store.get_lease(tid) is None
    assert await store.release_lease(lease) is False
    assert await store.acquire_lease(tid, "w2", LONG) is not None


async def test_release_with_a_stale_token_leaves_the_holder_alone(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    old = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, old)
    current = await _acquire(store, tid, "w2")
    assert await store.release_lease(old) is False
    assert await store.release_lease(replace(current, token=current.token + 1)) is False
    assert await store.get_lease(tid) == current


async def test_release_of_a_lease_never_taken_is_false(store: PersistenceStore) -> None:
    lease = Lease(trace_id=new_trace_id(), holder="w", token=1, expires_at_ms=2**40)
    assert await store.release_lease(lease) is False


async def test_no_lease_after_expiry(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, lease)
    assert await store.get_lease(tid) is None
    assert await store.get_lease(new_trace_id()) is None


async def test_writes_with_the_live_fence_pass(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1")
    await store.append(envelope(tid, 1), fence=lease.token)
    await store.resume(tid, 0, fence=lease.token)
    await store.append(envelope(tid, 1, {"again": 1}), fence=lease.token)
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    trace = await must_load(store, tid)
    assert trace.completion is CompletionState.SUCCESS
    assert trace.events[1].payload == {"again": 1}


async def _assert_fence_refused(store: PersistenceStore, trace_id: str, fence: int) -> None:
    before = await must_load(store, trace_id)
    with pytest.raises(LeaseLost):
        await store.append(envelope(trace_id, 5), fence=fence)
    with pytest.raises(LeaseLost):
        await store.resume(trace_id, 0, fence=fence)
    with pytest.raises(LeaseLost):
        await store.complete(trace_id, CompletionState.FAULT, fence=fence)
    assert await must_load(store, trace_id) == before


async def test_writes_with_a_stale_fence_are_lease_lost_and_store_nothing(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, steps=2)
    old = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, old)
    await _acquire(store, tid, "w2")
    await _assert_fence_refused(store, tid, old.token)


async def test_writes_with_an_expired_fence_are_lease_lost_and_store_nothing(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, steps=2)
    lease = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, lease)
    await _assert_fence_refused(store, tid, lease.token)


async def test_writes_with_a_released_fence_are_lease_lost(store: PersistenceStore) -> None:
    tid = await new_trace(store, steps=2)
    lease = await _acquire(store, tid, "w1")
    await store.release_lease(lease)
    await _assert_fence_refused(store, tid, lease.token)


async def test_writes_with_a_fence_but_no_lease_are_lease_lost(store: PersistenceStore) -> None:
    tid = await new_trace(store, steps=2)
    await _assert_fence_refused(store, tid, 1)
    fresh = new_trace_id()
    with pytest.raises(LeaseLost):
        await store.append(envelope(fresh, 0), fence=1)
    assert await store.load(fresh) is None


async def test_writes_without_a_fence_work_while_a_lease_is_held(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store)
    await _acquire(store, tid, "w1")
    lease = await store.get_lease(tid)
    await store.append(envelope(tid, 1))
    await store.resume(tid, 1)
    await store.complete(tid, CompletionState.SUCCESS)
    assert (await must_load(store, tid)).completion is CompletionState.SUCCESS
    assert await store.get_lease(tid) == lease  # complete without a fence: lease untouched


# --- a fenced complete releases its lease in the same atomic write --------------------


async def test_a_fenced_complete_releases_the_lease(store: PersistenceStore) -> None:
    tid = new_trace_id()
    lease = await _acquire(store, tid, "w1")
    await store.append(envelope(tid, 0), fence=lease.token)
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    assert (await must_load(store, tid)).completion is CompletionState.SUCCESS
    assert await store.get_lease(tid) is None
    assert await store.release_lease(lease) is False  # as after release_lease: freed once
    with pytest.raises(LeaseLost):
        await store.renew_lease(lease, LONG)
    again = await _acquire(store, tid, "w2")
    assert again.token > lease.token


async def test_a_fenced_fault_to_compensated_releases_the_lease(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, completion=CompletionState.FAULT)
    lease = await _acquire(store, tid, "w1")
    await store.complete(tid, CompletionState.COMPENSATED, fence=lease.token)
    assert (await must_load(store, tid)).completion is CompletionState.COMPENSATED
    assert await store.get_lease(tid) is None


async def test_the_identical_fenced_complete_again_is_a_no_op(store: PersistenceStore) -> None:
    """The retry after an unknown outcome (the first one committed and freed the lease)."""
    tid = await new_trace(store)
    lease = await _acquire(store, tid, "w1")
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    first = await must_load(store, tid)
    await wait_past(store, first.updated_at_ms)
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    assert await must_load(store, tid) == first
    newer = await _acquire(store, tid, "w2")
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)  # whatever the fence
    assert await must_load(store, tid) == first
    assert await store.get_lease(tid) == newer  # a no-op leaves the lease alone


async def test_a_fenced_complete_that_is_refused_keeps_the_lease(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, completion=CompletionState.SUCCESS)
    lease = await _acquire(store, tid, "w1")
    with pytest.raises(TraceCompleted):
        await store.complete(tid, CompletionState.FAULT, fence=lease.token)
    assert await store.get_lease(tid) == lease


async def test_a_stale_fence_complete_on_an_open_trace_is_lease_lost(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, steps=2)
    lease = await _acquire(store, tid, "w1")
    await store.release_lease(lease)
    before = await must_load(store, tid)
    with pytest.raises(LeaseLost):
        await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    assert await must_load(store, tid) == before
    assert await store.get_lease(tid) is None


async def test_a_fenced_complete_after_a_takeover_is_lease_lost(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, steps=2)
    old = await _acquire(store, tid, "w1", SHORT)
    await _expire(store, old)
    newer = await _acquire(store, tid, "w2")
    before = await must_load(store, tid)
    with pytest.raises(LeaseLost):
        await store.complete(tid, CompletionState.SUCCESS, fence=old.token)
    assert await must_load(store, tid) == before
    assert await store.get_lease(tid) == newer  # the new holder keeps its lease
    await store.complete(tid, CompletionState.SUCCESS, fence=newer.token)
    assert await store.get_lease(tid) is None


@pytest.mark.parametrize("ttl", [0, -1, 1.5, "100"])
async def test_a_bad_ttl_is_invalid(store: PersistenceStore, ttl: object) -> None:
    tid = await new_trace(store)
    with pytest.raises(InvalidInput, match="ttl_ms"):
        await store.acquire_lease(tid, "w", ttl)  # type: ignore[arg-type]
    assert await store.get_lease(tid) is None
    lease = await _acquire(store, tid, "w")
    with pytest.raises(InvalidInput, match="ttl_ms"):
        await store.renew_lease(lease, ttl)  # type: ignore[arg-type]
    assert await store.get_lease(tid) == lease


@pytest.mark.parametrize("holder", ["", "h" * 256, "a\x00b"])
async def test_a_bad_holder_is_invalid(store: PersistenceStore, holder: str) -> None:
    tid = await new_trace(store)
    with pytest.raises(InvalidInput, match="holder"):
        await store.acquire_lease(tid, holder, LONG)
    assert await store.get_lease(tid) is None
