"""Numbers up to 2**63 - 1 in the Lua scripts (issue 14, #2): Lua's numbers are doubles,
exact only below 2**53, so every comparison or increment of a step, token or time in a
script must be exact on the decimal strings. Each test uses neighbours that a double
cannot tell apart (2**63 - 2, 2**63 - 1 both round to 2**63)."""

from __future__ import annotations

from dataclasses import replace

from ranvier import CompensationRecord, CompensationState, CompletionState
from ranvier.rules import MAX_INT
from ranvier.stores.redis import RedisPersistenceStore
from tests.contract.helpers import envelope, must_load
from tests.redis.conftest import trace_id

LONG = 60_000


async def test_a_rewind_among_huge_steps_moves_exactly_the_later_ones(
    redis_store: RedisPersistenceStore,
) -> None:
    tid = trace_id()
    steps = [MAX_INT - 3, MAX_INT - 2, MAX_INT - 1, MAX_INT]
    for step in (steps[1], steps[0], steps[3], steps[2]):  # out of order on purpose
        await redis_store.append(envelope(tid, step))
    (summary,) = [s for s in (await redis_store.list_traces()).items if s.trace_id == tid]
    assert summary.last_step == MAX_INT
    await redis_store.resume(tid, MAX_INT - 2)
    trace = await must_load(redis_store, tid)
    assert [e.step for e in trace.events] == steps[:2]
    assert [e.step for e in trace.superseded_events] == steps[2:]  # in step order
    assert trace.resumed_from_step == MAX_INT - 2
    await redis_store.append(envelope(tid, MAX_INT - 1))  # the rewound step again
    trace = await must_load(redis_store, tid)
    assert trace.last_step == MAX_INT - 1
    await redis_store.resume(tid, MAX_INT - 1)  # the last live step: nothing moves
    assert [e.step for e in (await must_load(redis_store, tid)).events] == steps[:3]


async def test_fencing_tokens_grow_exactly_past_two_to_the_53(
    redis_store: RedisPersistenceStore,
) -> None:
    for raised, expected in [
        (MAX_INT - 1, MAX_INT),
        (10**17 - 1, 10**17),  # a carry through every digit
        (2**53, 2**53 + 1),  # the first integer a double cannot add one to
        (123456789012345678, 123456789012345679),
    ]:
        tid = trace_id()
        await redis_store.raise_lease_token(tid, raised)
        lease = await redis_store.acquire_lease(tid, "w", LONG)
        assert lease is not None and lease.token == expected
        assert await redis_store.get_lease(tid) == lease


async def test_a_raise_by_one_past_two_to_the_53_is_not_lost(
    redis_store: RedisPersistenceStore,
) -> None:
    tid = trace_id()
    await redis_store.raise_lease_token(tid, MAX_INT - 1)
    await redis_store.raise_lease_token(tid, MAX_INT)
    await redis_store.raise_lease_token(tid, MAX_INT - 1)  # never lowers
    tokens = {t.trace_id: t.token for t in await redis_store.list_lease_tokens(limit=10_000)}
    assert tokens[tid] == MAX_INT


async def test_purge_cutoffs_compare_huge_times_exactly(
    redis_store: RedisPersistenceStore,
) -> None:
    tid = trace_id()
    await redis_store.append(envelope(tid, 0))
    trace = replace(
        await must_load(redis_store, tid),
        completion=CompletionState.SUCCESS,
        updated_at_ms=MAX_INT - 1,
        completed_at_ms=MAX_INT - 1,
    )
    assert await redis_store.delete(tid)
    assert await redis_store.import_trace(trace) is True
    assert await redis_store.count_completed_before(MAX_INT - 1) == 0
    assert await redis_store.purge_completed(MAX_INT - 1) == 0
    assert await redis_store.count_completed_before(MAX_INT) == 1
    assert await redis_store.purge_completed(MAX_INT, limit=5) == 1
    assert await redis_store.load(tid) is None


async def test_ledger_cutoffs_compare_huge_times_exactly(
    redis_store: RedisPersistenceStore,
) -> None:
    comp = redis_store.compensations
    record = CompensationRecord(
        key=f"{trace_id()}:orders:boom",
        state=CompensationState.COMPENSATED,
        claimed_at_ms=MAX_INT - 2,
        compensated_at_ms=MAX_INT - 1,
    )
    assert await comp.import_record(record) is True
    assert await comp.get(record.key) == record
    assert await comp.count_older_than_ms(MAX_INT - 1) == 0
    assert await comp.purge_older_than_ms(MAX_INT - 1) == 0
    assert await comp.count_older_than_ms(MAX_INT) == 1
    assert await comp.purge_older_than_ms(MAX_INT) == 1
    assert await comp.get(record.key) is None
