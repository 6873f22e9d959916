"""The rules of the compensation idempotency store beside every adapter."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from ranvier import CompensationRecord, CompensationState, InvalidInput
from ranvier.stores.base import CompensationIdempotencyStore, PersistenceStore
from tests.contract.helpers import wait_past


def _key(label: str = "k") -> str:
    return f"trace-{uuid.uuid4().hex[:8]}:orders:{label}"


@pytest.fixture
def comp(store: PersistenceStore) -> CompensationIdempotencyStore:
    return store.compensations


async def test_claim_is_won_by_exactly_one_concurrent_claimer(
    comp: CompensationIdempotencyStore,
) -> None:
    key = _key()
    results = await asyncio.gather(*(comp.claim(key) for _ in range(50)))
    assert results.count(True) == 1
    assert await comp.claim(key) is False


async def test_a_claim_is_recorded_from_the_store_clock(
    store: PersistenceStore, comp: CompensationIdempotencyStore
) -> None:
    key = _key()
    assert await comp.get(key) is None
    before = await store.now_ms()
    assert await comp.claim(key) is True
    after = await store.now_ms()
    record = await comp.get(key)
    assert record is not None
    assert (record.key, record.state, record.compensated_at_ms) == (
        key,
        CompensationState.CLAIMED,
        None,
    )
    assert before <= record.claimed_at_ms <= after
    assert await comp.was_compensated(key) is False


async def test_mark_compensated_is_idempotent(
    store: PersistenceStore, comp: CompensationIdempotencyStore
) -> None:
    key = _key()
    await comp.claim(key)
    claimed = await comp.get(key)
    assert claimed is not None
    await comp.mark_compensated(key)
    record = await comp.get(key)
    assert record is not None and record.state is CompensationState.COMPENSATED
    assert record.claimed_at_ms == claimed.claimed_at_ms
    assert record.compensated_at_ms is not None
    assert record.compensated_at_ms >= record.claimed_at_ms
    await wait_past(store, record.compensated_at_ms)
    await comp.mark_compensated(key)
    assert await comp.get(key) == record
    assert await comp.was_compensated(key) is True
    assert await comp.claim(key) is False


async def test_mark_compensated_claims_an_unclaimed_key(
    comp: CompensationIdempotencyStore,
) -> None:
    key = _key()
    await comp.mark_compensated(key)
    assert await comp.was_compensated(key) is True
    assert await comp.claim(key) is False


async def test_keys_are_independent(comp: CompensationIdempotencyStore) -> None:
    first, second = _key("a"), _key("b")
    await comp.mark_compensated(first)
    assert await comp.was_compensated(second) is False
    assert await comp.claim(second) is True


async def test_release_drops_only_an_unfinished_claim(
    comp: CompensationIdempotencyStore,
) -> None:
    unfinished, done = _key("u"), _key("d")
    await comp.claim(unfinished)
    await comp.claim(done)
    await comp.mark_compensated(done)
    assert await comp.release(unfinished) is True
    assert await comp.get(unfinished) is None
    assert await comp.claim(unfinished) is True
    assert await comp.release(done) is False
    assert await comp.was_compensated(done) is True
    assert await comp.release(_key("never")) is False


async def test_list_unfinished_lists_claims_oldest_first(
    store: PersistenceStore, comp: CompensationIdempotencyStore
) -> None:
    keys = []
    for label in "abc":
        keys.append(_key(label))
        await comp.claim(keys[-1])
        await wait_past(store, await store.now_ms())
    await comp.mark_compensated(keys[1])
    unfinished = await comp.list_unfinished()
    assert [r.key for r in unfinished] == [keys[0], keys[2]]
    assert all(isinstance(r, CompensationRecord) for r in unfinished)
    assert all(r.state is CompensationState.CLAIMED for r in unfinished)
    assert [r.key for r in await comp.list_unfinished(limit=1)] == [keys[0]]


async def test_purge_removes_only_finished_keys_and_never_an_unfinished_claim(
    store: PersistenceStore, comp: CompensationIdempotencyStore
) -> None:
    old_claimed, old_done = _key("oc"), _key("od")
    await comp.claim(old_claimed)  # its hook never finished: must survive any purge
    await comp.mark_compensated(old_done)
    cutoff = await store.now_ms()
    await wait_past(store, cutoff)
    recent = _key("r")
    await comp.mark_compensated(recent)
    assert await comp.count_older_than_ms(cutoff + 1) == 1
    assert await comp.purge_older_than_ms(cutoff + 1) == 1
    assert await comp.get(old_done) is None
    claim = await comp.get(old_claimed)
    assert claim is not None and claim.state is CompensationState.CLAIMED
    assert await comp.get(recent) is not None
    assert await comp.purge_older_than_ms(cutoff + 1) == 0
    assert await comp.claim(old_claimed) is False  # the hook cannot run a second time
    far = await store.now_ms() + 10**9
    assert await comp.purge_older_than_ms(far) == 1  # recent, finished
    assert [r.key for r in await comp.list_unfinished()] == [old_claimed]


@pytest.mark.parametrize("key", ["", "k" * 256, "a\x00b"])
async def test_a_bad_key_is_invalid(comp: CompensationIdempotencyStore, key: str) -> None:
    with pytest.raises(InvalidInput, match="key"):
        await comp.claim(key)
    with pytest.raises(InvalidInput, match="key"):
        await comp.mark_compensated(key)
    assert await comp.list_unfinished() == []


async def test_odd_but_valid_keys_round_trip(comp: CompensationIdempotencyStore) -> None:
    key = "trace-{x}:\"q\":'s'*?[ab]:ünï✓ code"
    assert await comp.claim(key) is True
    await comp.mark_compensated(key)
    record = await comp.get(key)
    assert record is not None and record.key == key
