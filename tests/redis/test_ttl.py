"""TTL: every key of a trace expires `ttl_seconds` after the trace's last write; a
compensation key only once compensated (an unfinished claim never expires)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from ranvier import CompensationRecord, CompensationState, Intervention, TraceStart
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from tests.contract.helpers import envelope, must_load
from tests.redis.conftest import trace_id


async def _pttls(store: RedisPersistenceStore, tid: str) -> dict[str, int]:
    """PTTL of each existing key of the trace (-2: missing, -1: no expiry)."""
    keys = k.trace_keys(store.prefix, tid)
    return {key: int(await store.client.pttl(key)) for key in keys}


async def _wait_gone(store: RedisPersistenceStore, tid: str, seconds: float) -> None:
    for _ in range(int(seconds / 0.1)):
        if await store.load(tid) is None:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"trace {tid!r} did not expire within {seconds} s")


async def test_every_key_of_a_trace_expires_after_its_last_write(
    redis_url: str, prefix: str
) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, ttl_seconds=1) as s:
        tid = trace_id()
        await s.append(envelope(tid, 0))
        await s.append(envelope(tid, 1))
        await s.resume(tid, 0)  # creates the superseded list
        await s.save_intervention(tid, Intervention(target_node="node1"))
        await s.acquire_lease(tid, "worker", 300)
        ttls = await _pttls(s, tid)
        assert all(0 < ttl <= 1000 for ttl in ttls.values()), ttls
        await _wait_gone(s, tid, 5)
        assert set((await _pttls(s, tid)).values()) == {-2}  # every key is gone
        assert await s.get_lease(tid) is None


async def test_a_write_refreshes_the_ttl_of_the_whole_trace(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, ttl_seconds=2) as s:
        tid = trace_id()
        await s.append(envelope(tid, 0))
        await asyncio.sleep(1.2)
        await s.append(envelope(tid, 1))
        ttls = await _pttls(s, tid)
        state, events = k.trace_keys(prefix, tid)[:2]
        assert ttls[state] > 1500 and ttls[events] > 1500, ttls
        await asyncio.sleep(1.2)  # past the first write's expiry, within the second's
        assert [e.step for e in (await must_load(s, tid)).events] == [0, 1]


async def test_without_a_ttl_nothing_expires(redis_store: RedisPersistenceStore) -> None:
    tid = trace_id()
    await redis_store.append(envelope(tid, 0))
    ttls = await _pttls(redis_store, tid)
    state, events = k.trace_keys(redis_store.prefix, tid)[:2]
    assert ttls[state] == ttls[events] == -1


async def test_an_unfinished_claim_never_expires(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, ttl_seconds=1) as s:
        key = f"{trace_id()}:orders:boom"
        assert await s.compensations.claim(key)
        full = k.compensation_key(prefix, key)
        assert int(await s.client.pttl(full)) == -1  # its hook may still run: no expiry
        await asyncio.sleep(1.2)
        record = await s.compensations.get(key)
        assert record is not None and record.state is CompensationState.CLAIMED
        assert await s.compensations.claim(key) is False  # the hook cannot run twice


async def test_a_compensated_key_expires_after_it_was_marked(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, ttl_seconds=1) as s:
        claimed, direct = f"{trace_id()}:orders:boom", f"{trace_id()}:orders:boom"
        assert await s.compensations.claim(claimed)
        await asyncio.sleep(0.5)
        await s.compensations.mark_compensated(claimed)
        await s.compensations.mark_compensated(direct)  # marked without a claim first
        for key in (claimed, direct):
            assert 500 < int(await s.client.pttl(k.compensation_key(prefix, key))) <= 1000
        for _ in range(40):
            if await s.compensations.get(claimed) is None:
                break
            await asyncio.sleep(0.1)
        assert await s.compensations.get(claimed) is None
        assert await s.compensations.get(direct) is None


async def test_an_imported_claim_never_expires(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, ttl_seconds=60) as s:
        comp = s.compensations
        claim = CompensationRecord(
            key=f"{trace_id()}:orders:x", state=CompensationState.CLAIMED, claimed_at_ms=5
        )
        assert await comp.import_record(claim) is True
        assert int(await s.client.pttl(k.compensation_key(prefix, claim.key))) == -1
        done = replace(claim, state=CompensationState.COMPENSATED, compensated_at_ms=9)
        assert await comp.import_record(done) is True
        assert 0 < int(await s.client.pttl(k.compensation_key(prefix, claim.key))) <= 60_000


async def test_a_trace_created_by_a_start_expires_like_an_appended_one(
    redis_url: str, prefix: str
) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix, ttl_seconds=1) as s:
        tid = trace_id()
        start = TraceStart(circuit="orders", schematic_version="1.0", input={"a": 1})
        assert await s.acquire_lease(tid, "worker", 300, start=start) is not None
        ttls = await _pttls(s, tid)
        state, lease = k.trace_keys(prefix, tid)[0], k.trace_keys(prefix, tid)[4]
        assert 0 < ttls[state] <= 1000 and 0 < ttls[lease] <= 1000, ttls
        assert (await must_load(s, tid)).input == {"a": 1}
        await _wait_gone(s, tid, 5)
        assert set((await _pttls(s, tid)).values()) == {-2}
