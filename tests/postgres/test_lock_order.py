"""One lock order for every statement: a trace's state row, then its lease row.

Two statements that lock the same rows in opposite orders can deadlock (the server
aborts one of them after `deadlock_timeout`). Here a transaction holds the trace's state
row while the statement under test runs: the statement must wait for it before it
touches the lease row, so that the transaction can still lock the lease row itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from ranvier import CompletionState, TraceStart, rules
from ranvier.stores.postgres import PostgresPersistenceStore
from ranvier.stores.postgres.leases import Acquisition
from ranvier.stores.postgres.sql import table_names
from tests.contract.helpers import envelope, new_trace_id

START = TraceStart(circuit="orders", schematic_version="1.0", input={"n": 1})
Operation = Callable[[PostgresPersistenceStore, str, int], Awaitable[Any]]


def _prepared(trace_id: str, step: int) -> rules.PreparedEnvelope:
    return rules.prepare_envelope(envelope(trace_id, step))


async def _acquire_batch(store: PostgresPersistenceStore, tid: str, token: int) -> Any:
    other = new_trace_id("other")
    batch = [
        Acquisition(other, "me", 30_000, rules.prepare_start(START)),
        Acquisition(tid, "me", 30_000, rules.prepare_start(START)),
    ]
    assert await store._leases.flush(batch) == [None, None]
    assert all(call.lease is not None for call in batch)


async def _append_batch(store: PostgresPersistenceStore, tid: str, token: int) -> Any:
    batch = [(_prepared(new_trace_id("other"), 0), None), (_prepared(tid, 1), token)]
    assert await store._flush(batch) == [None, None]


async def _complete_batch(store: PostgresPersistenceStore, tid: str, token: int) -> Any:
    other = new_trace_id("other")
    await store.append(envelope(other, 0))
    batch = [(other, "success", None), (tid, "success", token)]
    assert await store._flush_completes(batch) == [None, None]


OPERATIONS: dict[str, tuple[bool, Operation]] = {
    # name: (the lease is released first, so that the statement takes it; the operation)
    "acquire": (True, lambda s, tid, token: s.acquire_lease(tid, "me", 30_000)),
    "acquire-start": (True, lambda s, tid, token: s.acquire_lease(tid, "me", 30_000, start=START)),
    "acquire-refused": (False, lambda s, tid, token: s.acquire_lease(tid, "me", 30_000)),
    "acquire-batch": (True, _acquire_batch),
    "append": (False, lambda s, tid, token: s.append(envelope(tid, 1), fence=token)),
    "append-batch": (False, _append_batch),
    "complete": (False, lambda s, tid, token: s.complete(tid, CompletionState.FAULT, fence=token)),
    "complete-batch": (False, _complete_batch),
    "resume": (False, lambda s, tid, token: s.resume(tid, 0, fence=token)),
}


@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_a_statement_waits_for_the_state_row_before_it_locks_the_lease_row(
    pg_store: PostgresPersistenceStore, name: str
) -> None:
    release_first, operation = OPERATIONS[name]
    t = table_names(pg_store.table_prefix)
    tid = new_trace_id()
    await pg_store.append(envelope(tid, 0))
    lease = await pg_store.acquire_lease(tid, "w0", 30_000)
    assert lease is not None
    if release_first:
        assert await pg_store.release_lease(lease)
    async with pg_store.pool.acquire() as holder:
        transaction = holder.transaction()
        await transaction.start()
        try:
            await holder.execute(
                f"SELECT 1 FROM {t['state']} WHERE trace_id = $1 FOR NO KEY UPDATE", tid
            )
            task = asyncio.create_task(operation(pg_store, tid, lease.token))
            await _until_someone_waits_for(holder, task)
            # had the statement locked the lease row already, this would wait for it while
            # it waits for us: a deadlock, which the server resolves after deadlock_timeout
            # by aborting one of the two (the store would retry its statement): give up
            # well before, so that a deadlock fails the test whichever side it aborts
            await holder.execute(
                "SELECT set_config('lock_timeout', (extract(epoch FROM"
                " current_setting('deadlock_timeout')::interval) * 250)::int::text, true)"
            )
            await holder.execute(
                f"SELECT 1 FROM {t['leases']} WHERE trace_id = $1 FOR NO KEY UPDATE", tid
            )
        finally:
            await transaction.rollback()
        await task
    trace = await pg_store.load(tid)
    assert trace is not None
    if name.startswith("acquire") and name != "acquire-refused":
        assert trace.attempts == 2  # the first acquisition, then this one


async def _until_someone_waits_for(conn: Any, task: asyncio.Task[Any]) -> None:
    """Until a transaction waits for `conn`'s (the statement for the state row)."""
    for _ in range(500):
        assert not task.done(), "the statement did not wait for the state row"
        waiting = await conn.fetchval(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'transactionid'"
            " AND NOT granted AND transactionid = pg_current_xact_id()::xid)"
        )
        if waiting:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("nothing waited for the state row")
