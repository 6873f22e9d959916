"""Fast paths (append, complete): one guarded statement; the checked path when it declines."""

from __future__ import annotations

import asyncio
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ranvier import CheckpointConflict, CircuitMismatch, LeaseLost, TraceCompleted
from ranvier.model import CompletionState, PersistenceEnvelope
from ranvier.stores.sqlite import SqlitePersistenceStore, sql
from tests.contract.helpers import envelope, new_trace_id
from tests.sqlite.helpers import trace_writes


@pytest.fixture
async def store(tmp_path: Path) -> SqlitePersistenceStore:
    store = SqlitePersistenceStore(tmp_path / "fast.db")
    await store.ensure_schema()
    return store


async def test_an_append_to_an_open_trace_is_one_statement(store: SqlitePersistenceStore) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))  # creates the trace: the checked path
    seen = await trace_writes(store)
    await store.append(envelope(tid, 1))
    assert seen == ["APPEND_FAST"]  # its own (autocommit) transaction
    trace = await store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]
    await store.close()


async def test_a_batch_of_appends_is_one_transaction_of_fast_statements(
    store: SqlitePersistenceStore,
) -> None:
    tids = [new_trace_id() for _ in range(10)]
    await asyncio.gather(*(store.append(envelope(t, 0)) for t in tids))
    seen = await trace_writes(store)
    await asyncio.gather(*(store.append(envelope(t, 1)) for t in tids))
    assert seen.count("APPEND_FAST") == 10
    assert seen.count("BEGIN") == seen.count("COMMIT") >= 1
    assert seen.count("BEGIN") < 10
    await store.close()


async def test_a_fenced_append_under_the_live_lease_is_one_statement(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", 60_000)
    assert lease is not None
    await store.append(envelope(tid, 0), fence=lease.token)
    seen = await trace_writes(store)
    await store.append(envelope(tid, 1), fence=lease.token)
    assert seen == ["APPEND_FAST"]
    with pytest.raises(LeaseLost):
        await store.append(envelope(tid, 2), fence=lease.token + 1)
    await store.release_lease(lease)
    with pytest.raises(LeaseLost):
        await store.append(envelope(tid, 2), fence=lease.token)
    trace = await store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]
    await store.close()


async def test_what_the_fast_statement_declines_the_rules_decide(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, {"v": 1}))
    await store.append(envelope(tid, 1))
    await store.append(envelope(tid, 0, {"v": 1}))  # identical retry of an earlier step
    await store.append(envelope(tid, 1))  # identical retry of the last step
    with pytest.raises(CheckpointConflict):
        await store.append(envelope(tid, 1, {"other": True}))
    with pytest.raises(CircuitMismatch):
        await store.append(envelope(tid, 2, circuit="elsewhere"))
    await store.complete(tid, CompletionState.SUCCESS)
    with pytest.raises(TraceCompleted):
        await store.append(envelope(tid, 2))
    trace = await store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]
    await store.close()


async def test_filling_a_gap_records_the_change_on_the_trace(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    await store.append(envelope(tid, 2))
    await asyncio.sleep(0.01)
    before = await store.now_ms()
    await store.append(envelope(tid, 1))  # below the last live step: the checked path
    trace = await store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1, 2]
    assert trace.updated_at_ms >= before
    await store.close()


async def test_an_event_keeps_its_own_schematic_version(
    store: SqlitePersistenceStore, tmp_path: Path
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0, version="1"))
    seen = await trace_writes(store)
    await store.append(envelope(tid, 1, version="2"))  # the checked path stores "2"
    await store.append(envelope(tid, 2, version="1"))  # the fast path stores NULL
    assert seen == ["APPEND_FAST", "BEGIN", "SELECT", "INSERT", "COMMIT", "APPEND_FAST"]
    trace = await store.load(tid)
    assert trace is not None and trace.schematic_version == "1"
    assert [e.schematic_version for e in trace.events] == ["1", "2", "1"]
    await store.close()
    with closing(sqlite3.connect(tmp_path / "fast.db")) as conn:
        stored = conn.execute(
            f"SELECT step, schematic_version FROM {sql.EVENTS} WHERE trace_id = ? ORDER BY step",
            (tid,),
        ).fetchall()
    assert stored == [(0, None), (1, "2"), (2, None)]  # NULL: the trace's own


async def test_missing_node_id_and_payload_are_stored_as_null_on_the_fast_path(
    store: SqlitePersistenceStore, tmp_path: Path
) -> None:
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    seen = await trace_writes(store)
    bare = PersistenceEnvelope(trace_id=tid, circuit="orders", schematic_version="1.0", step=1)
    await store.append(bare)
    assert seen == ["APPEND_FAST"]
    trace = await store.load(tid)
    assert trace is not None
    assert (trace.events[1].node_id, trace.events[1].payload) == (None, None)
    assert trace.events[1].payload_hash is None
    await store.close()
    with closing(sqlite3.connect(tmp_path / "fast.db")) as conn:
        stored = conn.execute(
            f"SELECT typeof(node_id), typeof(payload), typeof(payload_hash) FROM {sql.EVENTS}"
            " WHERE trace_id = ? AND step = 1",
            (tid,),
        ).fetchone()
    assert stored == ("null", "null", "null")  # '' is how the statement is told None


async def test_completing_an_open_trace_is_one_statement(store: SqlitePersistenceStore) -> None:
    unfenced = new_trace_id()
    await store.append(envelope(unfenced, 0))
    seen = await trace_writes(store)
    await store.complete(unfenced, CompletionState.SUCCESS)
    assert seen == ["UPDATE"]  # its own (autocommit) transaction


async def test_a_fenced_completion_and_its_lease_release_are_one_transaction(
    store: SqlitePersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", 60_000)
    assert lease is not None
    await store.append(envelope(tid, 0), fence=lease.token)
    seen = await trace_writes(store)
    await store.complete(tid, CompletionState.FAULT, fence=lease.token)
    assert seen == ["BEGIN", "UPDATE", "UPDATE", "COMMIT"]  # completion, then the release
    assert await store.get_lease(tid) is None
    await store.complete(tid, CompletionState.FAULT, fence=lease.token)  # a no-op
    again = await store.acquire_lease(tid, "w2", 60_000)
    assert again is not None
    await store.complete(tid, CompletionState.COMPENSATED, fence=again.token)  # checked path
    assert await store.get_lease(tid) is None
    with pytest.raises(TraceCompleted):
        await store.complete(tid, CompletionState.SUCCESS)
    trace = await store.load(tid)
    assert trace is not None and trace.completion is CompletionState.COMPENSATED
    other = new_trace_id()
    await store.append(envelope(other, 0))
    with pytest.raises(LeaseLost):
        await store.complete(other, CompletionState.SUCCESS, fence=lease.token)
    trace = await store.load(other)
    assert trace is not None and trace.completion is None
    await store.close()
