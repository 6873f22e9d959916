"""64-bit numbers on SQLite (issue 14, item 2): 2**63 - 1 round-trips through every
column that holds a number, and nothing larger ever surfaces as a raw OverflowError."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from ranvier import (
    CompensationRecord,
    CompensationState,
    CompletionState,
    ForkOrigin,
    Intervention,
    InvalidInput,
    Lease,
    LeaseLost,
    PersistedTrace,
    RanvierError,
)
from ranvier.rules import MAX_INT
from ranvier.stores.sqlite import SqlitePersistenceStore
from tests.contract.helpers import envelope, must_load, new_trace_id

TOO_BIG = MAX_INT + 1


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    async with SqlitePersistenceStore(tmp_path / "numbers.db") as store:
        await store.ensure_schema()
        yield store


async def test_the_largest_numbers_round_trip_through_every_column(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    event = envelope(tid, MAX_INT, timestamp_ms=MAX_INT)
    trace = PersistedTrace(
        trace_id=tid,
        circuit="orders",
        schematic_version="1.0",
        events=(event,),
        superseded_events=(envelope(tid, MAX_INT - 1, timestamp_ms=MAX_INT),),
        interventions=(Intervention(target_node="n", timestamp_ms=MAX_INT),),
        resumed_from_step=MAX_INT - 2,
        completion=CompletionState.SUCCESS,
        created_at_ms=MAX_INT,
        updated_at_ms=MAX_INT,
        completed_at_ms=MAX_INT,
        attempts=MAX_INT,
        forked_from=ForkOrigin(trace_id="source", step=MAX_INT),
    )
    assert await store.import_trace(trace) is True
    loaded = await must_load(store, tid)
    assert loaded.events[0].step == MAX_INT
    assert (loaded.superseded_events[0].step, loaded.interventions[0].timestamp_ms) == (
        MAX_INT - 1,
        MAX_INT,
    )
    assert (loaded.created_at_ms, loaded.updated_at_ms, loaded.completed_at_ms) == (MAX_INT,) * 3
    assert (loaded.resumed_from_step, loaded.attempts) == (MAX_INT - 2, MAX_INT)
    assert loaded.forked_from == ForkOrigin(trace_id="source", step=MAX_INT)
    assert await store.import_trace(trace) is False  # the same, read back exactly
    assert await store.count_completed_before(MAX_INT) == 0  # completed at MAX_INT: not before
    (summary,) = (await store.list_traces(min_attempts=MAX_INT)).items
    assert summary.last_step == MAX_INT

    key = "trace:orders:big"
    record = CompensationRecord(
        key=key,
        state=CompensationState.COMPENSATED,
        claimed_at_ms=MAX_INT,
        compensated_at_ms=MAX_INT,
    )
    assert await store.compensations.import_record(record) is True
    assert await store.compensations.get(key) == record
    assert await store.compensations.count_older_than_ms(MAX_INT) == 0

    await store.raise_lease_token(tid, MAX_INT)
    tokens = await store.list_lease_tokens()
    assert [(t.trace_id, t.token) for t in tokens] == [(tid, MAX_INT)]


async def test_a_live_trace_takes_the_largest_step_and_resumes_from_it(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", 60_000)
    assert lease is not None
    await store.append(envelope(tid, MAX_INT - 1, timestamp_ms=MAX_INT), fence=lease.token)
    await store.append(envelope(tid, MAX_INT, timestamp_ms=MAX_INT), fence=lease.token)
    assert (await store.resume(tid, MAX_INT - 1, fence=lease.token)).next_step == MAX_INT
    await store.append(envelope(tid, MAX_INT, {"again": 1}), fence=lease.token)
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    trace = await must_load(store, tid)
    assert [e.step for e in trace.events] == [MAX_INT - 1, MAX_INT]
    assert trace.resumed_from_step == MAX_INT - 1


def _bad_calls(store: SqlitePersistenceStore, tid: str) -> dict[str, Callable[[], Awaitable[Any]]]:
    big_lease = Lease(trace_id=tid, holder="w1", token=TOO_BIG, expires_at_ms=0)
    comp = store.compensations
    return {
        "append step": lambda: store.append(envelope(tid, TOO_BIG)),
        "append timestamp": lambda: store.append(envelope(tid, 1, timestamp_ms=TOO_BIG)),
        "append fence": lambda: store.append(envelope(tid, 1), fence=TOO_BIG),
        "resume step": lambda: store.resume(tid, TOO_BIG),
        "resume fence": lambda: store.resume(tid, 0, fence=TOO_BIG),
        "complete fence": lambda: store.complete(tid, CompletionState.FAULT, fence=TOO_BIG),
        "intervention": lambda: store.save_intervention(
            tid, Intervention(target_node="n", timestamp_ms=TOO_BIG)
        ),
        "list": lambda: store.list_traces(updated_before_ms=TOO_BIG),
        "count": lambda: store.count_completed_before(TOO_BIG),
        "purge": lambda: store.purge_completed(TOO_BIG),
        "raise token": lambda: store.raise_lease_token(tid, TOO_BIG),
        "renew": lambda: store.renew_lease(big_lease, 1000),
        "release": lambda: store.release_lease(big_lease),
        "ledger count": lambda: comp.count_older_than_ms(TOO_BIG),
        "ledger purge": lambda: comp.purge_older_than_ms(TOO_BIG),
        "ledger import": lambda: comp.import_record(
            CompensationRecord(key="k", state=CompensationState.CLAIMED, claimed_at_ms=TOO_BIG)
        ),
    }


@pytest.mark.parametrize("batched", [False, True], ids=["alone", "in a batch"])
async def test_numbers_past_64_bits_are_ranvier_errors_and_store_nothing(
    store: SqlitePersistenceStore, batched: bool
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    before = await must_load(store, tid)
    for name, call in _bad_calls(store, tid).items():
        if batched:  # beside other writes: the fast statements run in one transaction
            other = new_trace_id()
            results = await _gather(call(), store.append(envelope(other, 0)))
            assert results[1] is None, name
            outcome = results[0]
        else:
            outcome = await _outcome(call())
        assert isinstance(outcome, InvalidInput | LeaseLost) or outcome is False, (name, outcome)
    assert await must_load(store, tid) == before


async def test_a_token_past_the_largest_is_refused_not_overflowed(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    await store.raise_lease_token(tid, MAX_INT)
    with pytest.raises(InvalidInput, match=r"at most 2\*\*63 - 1"):
        await store.acquire_lease(tid, "w1", 60_000)
    assert await store.get_lease(tid) is None
    assert [t.token for t in await store.list_lease_tokens()] == [MAX_INT]


async def _outcome(call: Awaitable[Any]) -> Any:
    """The result, or the `RanvierError` raised (anything else, OverflowError included,
    fails the test)."""
    try:
        return await call
    except RanvierError as exc:
        return exc


async def _gather(*calls: Awaitable[Any]) -> list[Any]:
    return list(await asyncio.gather(*(_outcome(c) for c in calls)))
