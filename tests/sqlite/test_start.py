"""Durable starts on SQLite: one transaction with the lease, and appends stay fast after."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from ranvier import ForkOrigin, InvalidInput, RestoreConflict, TraceStart
from ranvier.model import CompletionState
from ranvier.rules import MAX_INT
from ranvier.stores.sqlite import SqlitePersistenceStore, sql
from tests.contract.helpers import envelope, new_trace_id
from tests.sqlite.helpers import trace_writes

LONG = 60_000
START = TraceStart(circuit="orders", schematic_version="1.0", input={"order": "o-1"})


@pytest.fixture
async def store(tmp_path: Path) -> SqlitePersistenceStore:
    store = SqlitePersistenceStore(tmp_path / "start.db")
    await store.ensure_schema()
    await store.get_lease("warm-up")  # the reader's connection is open
    return store


def _state_row(path: Path, trace_id: str) -> tuple[Any, ...]:
    with closing(sqlite3.connect(path)) as conn:
        row = conn.execute(
            f"SELECT input, attempts, forked_from, forked_at_step, created_at_ms, updated_at_ms"
            f" FROM {sql.STATE} WHERE trace_id = ?",
            (trace_id,),
        ).fetchone()
    assert row is not None
    return tuple(row)


async def test_a_start_and_its_lease_are_one_transaction(
    store: SqlitePersistenceStore, tmp_path: Path
) -> None:
    await store.append(envelope(new_trace_id(), 0))  # the writer's connection is open
    tid = new_trace_id()
    seen = await trace_writes(store)
    before = await store.now_ms()
    lease = await store.acquire_lease(tid, "w1", LONG, start=START)
    assert lease is not None
    # the lease's row, then the trace's: one job on the writer, committed once
    assert seen == ["BEGIN", "SELECT", "INSERT", "INSERT", "COMMIT"]
    stored_input, attempts, forked_from, forked_at, created, updated = _state_row(
        tmp_path / "start.db", tid
    )
    assert (stored_input, attempts, forked_from, forked_at) == ('{"order":"o-1"}', 1, None, None)
    assert created == updated and before <= created <= lease.expires_at_ms - LONG
    await store.close()


async def test_a_resume_counts_its_attempt_in_the_leases_transaction(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    first = await store.acquire_lease(tid, "w1", LONG, start=START)
    assert first is not None and await store.release_lease(first)
    seen = await trace_writes(store)
    assert await store.acquire_lease(tid, "w2", LONG) is not None
    assert seen == ["BEGIN", "SELECT", "INSERT", "UPDATE", "COMMIT"]
    seen.clear()
    assert await store.acquire_lease(tid, "w3", LONG, start=START) is None  # held
    assert seen == ["BEGIN", "SELECT", "COMMIT"]  # refused: nothing written
    trace = await store.load(tid)
    assert trace is not None and trace.attempts == 2
    await store.close()


async def test_appends_after_a_start_take_the_fast_statement(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=START)
    assert lease is not None
    seen = await trace_writes(store)
    await store.append(envelope(tid, 0), fence=lease.token)  # the first event of the trace
    await store.append(envelope(tid, 1), fence=lease.token)
    assert seen == ["APPEND_FAST", "APPEND_FAST"]
    trace = await store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]
    assert trace.input == {"order": "o-1"} and trace.attempts == 1
    assert trace.updated_at_ms >= trace.created_at_ms
    await store.close()


async def test_a_start_of_another_schematic_version_stores_the_events_own(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=replace(START, schematic_version="2"))
    assert lease is not None
    await store.append(envelope(tid, 0, version="1.0"), fence=lease.token)  # the checked path
    trace = await store.load(tid)
    assert trace is not None and trace.schematic_version == "2"
    assert [e.schematic_version for e in trace.events] == ["1.0"]
    await store.close()


async def test_a_start_over_the_payload_limit_never_reaches_the_writer(tmp_path: Path) -> None:
    store = SqlitePersistenceStore(tmp_path / "small.db", max_payload_bytes=64)
    await store.ensure_schema()
    await store.append(envelope(new_trace_id(), 0))  # the writer's connection is open
    seen = await trace_writes(store)
    tid = new_trace_id()
    with pytest.raises(InvalidInput, match="64"):
        await store.acquire_lease(tid, "w1", LONG, start=replace(START, input="x" * 100))
    assert seen == []
    assert await store.get_lease(tid) is None and await store.load(tid) is None
    await store.close()


async def test_a_restored_fork_keeps_its_origin_in_columns(
    store: SqlitePersistenceStore, tmp_path: Path
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=START)
    assert lease is not None
    await store.append(envelope(tid, 0), fence=lease.token)
    await store.complete(tid, CompletionState.FAULT, fence=lease.token)
    source = await store.load(tid)
    assert source is not None
    fork = replace(
        source,
        trace_id=new_trace_id("fork"),
        events=(),
        completion=None,
        completed_at_ms=None,
        attempts=0,
        forked_from=ForkOrigin(trace_id=tid, step=0),
    )
    assert await store.import_trace(fork) is True
    assert await store.import_trace(fork) is False  # identical
    with pytest.raises(RestoreConflict):
        await store.import_trace(replace(fork, attempts=1))
    with pytest.raises(RestoreConflict):
        await store.import_trace(replace(fork, input={"order": "o-2"}))
    with pytest.raises(RestoreConflict):
        await store.import_trace(replace(fork, forked_from=ForkOrigin(trace_id=tid, step=1)))
    await store.close()
    assert _state_row(tmp_path / "start.db", fork.trace_id)[:4] == (
        '{"order":"o-1"}',
        0,
        tid,
        0,
    )
    with closing(sqlite3.connect(tmp_path / "start.db")) as conn:
        row = conn.execute(
            f"SELECT attempts, forked_from, forked_at_step FROM {sql.TRACES_VIEW}"
            " WHERE trace_id = ?",
            (fork.trace_id,),
        ).fetchone()
    assert row == (0, tid, 0)  # operators see it in the runbook's view


async def test_listing_bounds_up_to_64_bits_filter_as_they_say(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    assert await store.acquire_lease(tid, "w1", LONG, start=START) is not None
    assert (await store.list_traces(min_attempts=MAX_INT)).items == ()
    (summary,) = (await store.list_traces(updated_before_ms=MAX_INT, min_attempts=1)).items
    assert (summary.trace_id, summary.attempts, summary.event_count) == (tid, 1, 0)
    with pytest.raises(InvalidInput, match=r"at most 2\*\*63 - 1"):
        await store.list_traces(updated_before_ms=MAX_INT + 1)
    assert (await store.list_traces(min_attempts=1 << 64)).items == ()  # clamped: none has
    await store.close()
