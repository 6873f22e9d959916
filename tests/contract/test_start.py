"""The rules of a durable start: `acquire_lease(..., start=...)`, attempts, fork origins."""

from __future__ import annotations

import asyncio
import hashlib
import math
from dataclasses import replace

import orjson
import pytest

from ranvier import (
    CompletionState,
    ForkOrigin,
    InvalidInput,
    PersistedTrace,
    TraceStart,
    TraceStatus,
    rules,
)
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, must_load, new_trace, new_trace_id

LONG = 60_000
INPUT = {"order": "o-1", "qty": 2, "lines": [1.5, "é", None, True]}


def _start(value: object = None, circuit: str = "orders") -> TraceStart:
    return TraceStart(circuit=circuit, schematic_version="1.0", input=value)


async def test_a_start_creates_the_trace_with_its_input_before_any_event(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=_start(INPUT))
    assert lease is not None
    trace = await must_load(store, tid)
    assert (trace.circuit, trace.schematic_version, trace.input) == ("orders", "1.0", INPUT)
    assert trace.events == () and trace.completion is None
    assert trace.attempts == 1 and trace.forked_from is None
    assert trace.created_at_ms > 0


async def test_a_started_trace_lists_as_running_then_interrupted(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=_start(INPUT))
    assert lease is not None
    running = await store.list_traces(status=TraceStatus.RUNNING, circuit="orders")
    assert tid in [s.trace_id for s in running.items]
    await store.release_lease(lease)
    page = await store.list_traces(status=TraceStatus.INTERRUPTED, circuit="orders")
    (summary,) = [s for s in page.items if s.trace_id == tid]
    assert (summary.last_step, summary.event_count, summary.attempts) == (None, 0, 1)


async def test_the_first_append_after_a_start_keeps_the_input(store: PersistenceStore) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=_start(INPUT))
    assert lease is not None
    await store.append(envelope(tid, 0, {"done": 1}), fence=lease.token)
    await store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
    trace = await must_load(store, tid)
    assert trace.input == INPUT and [e.step for e in trace.events] == [0]
    assert trace.completion is CompletionState.SUCCESS


async def test_a_null_input_is_stored_as_null(store: PersistenceStore) -> None:
    tid = new_trace_id()
    assert await store.acquire_lease(tid, "w1", LONG, start=_start(None)) is not None
    trace = await must_load(store, tid)
    assert trace.input is None and trace.attempts == 1


async def test_each_acquisition_of_an_unfinished_trace_counts_an_attempt(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    for attempt in range(1, 4):
        lease = await store.acquire_lease(tid, f"w{attempt}", LONG, start=_start(INPUT))
        assert lease is not None
        assert (await must_load(store, tid)).attempts == attempt
        await store.release_lease(lease)
    lease = await store.acquire_lease(tid, "w4", LONG)  # a resume: no start
    assert lease is not None
    assert (await must_load(store, tid)).attempts == 4
    (summary,) = (await store.list_traces(circuit="orders", min_attempts=4)).items
    assert summary.trace_id == tid and summary.attempts == 4


async def test_a_refused_acquisition_counts_nothing(store: PersistenceStore) -> None:
    tid = new_trace_id()
    assert await store.acquire_lease(tid, "w1", LONG, start=_start(INPUT)) is not None
    assert await store.acquire_lease(tid, "w2", LONG, start=_start(INPUT)) is None
    assert (await must_load(store, tid)).attempts == 1


async def test_a_start_never_changes_a_stored_trace(store: PersistenceStore) -> None:
    tid = await new_trace(store, steps=2)
    before = await must_load(store, tid)
    lease = await store.acquire_lease(tid, "w1", LONG, start=_start({"other": 1}))
    assert lease is not None
    after = await must_load(store, tid)
    assert after.input is None and after.events == before.events
    assert after.attempts == before.attempts + 1


async def test_a_completed_trace_counts_no_attempt(store: PersistenceStore) -> None:
    tid = await new_trace(store, completion=CompletionState.SUCCESS)
    lease = await store.acquire_lease(tid, "w1", LONG, start=_start(INPUT))
    assert lease is not None
    assert (await must_load(store, tid)).attempts == 0


async def test_without_a_start_no_trace_is_created(store: PersistenceStore) -> None:
    tid = new_trace_id()
    assert await store.acquire_lease(tid, "w1", LONG) is not None
    assert await store.load(tid) is None


async def test_one_of_many_concurrent_starts_creates_the_trace(store: PersistenceStore) -> None:
    tid = new_trace_id()
    leases = await asyncio.gather(
        *(store.acquire_lease(tid, f"w{i}", LONG, start=_start({"i": i})) for i in range(20))
    )
    winners = [i for i, lease in enumerate(leases) if lease is not None]
    assert len(winners) == 1
    trace = await must_load(store, tid)
    assert trace.input == {"i": winners[0]} and trace.attempts == 1


@pytest.mark.parametrize(
    ("start", "says"),
    [
        (_start({"x": math.nan}), "NaN"),
        (_start({"x": "\u0000"}), "NUL"),
        (_start({1: "int key"}), "key"),
        (TraceStart(circuit="", schematic_version="1.0"), "circuit"),
        (TraceStart(circuit="orders", schematic_version=""), "schematic_version"),
    ],
)
async def test_a_bad_start_is_refused_before_anything_is_taken(
    store: PersistenceStore, start: TraceStart, says: str
) -> None:
    tid = new_trace_id()
    with pytest.raises(InvalidInput, match=says):
        await store.acquire_lease(tid, "w1", LONG, start=start)
    assert await store.load(tid) is None
    assert await store.get_lease(tid) is None


async def test_a_bad_min_attempts_is_refused(store: PersistenceStore) -> None:
    with pytest.raises(InvalidInput, match="min_attempts"):
        await store.list_traces(min_attempts=0)


async def test_input_attempts_and_fork_origin_round_trip_through_import(
    store: PersistenceStore,
) -> None:
    tid = new_trace_id()
    lease = await store.acquire_lease(tid, "w1", LONG, start=_start(INPUT))
    assert lease is not None
    await store.append(envelope(tid, 0), fence=lease.token)
    original = await must_load(store, tid)
    forked = replace(
        original,
        trace_id=new_trace_id("fork"),
        events=(),
        forked_from=ForkOrigin(trace_id=tid, step=1),
        attempts=0,
    )
    assert await store.import_trace(forked) is True
    restored = await must_load(store, forked.trace_id)
    assert restored.forked_from == ForkOrigin(trace_id=tid, step=1)
    assert restored.input == INPUT and restored.events == ()
    assert rules.trace_digest(restored) == rules.trace_digest(forked)
    assert await store.delete(tid)
    assert await store.import_trace(original) is True
    again = await must_load(store, tid)
    assert again == original and again.attempts == 1


def test_the_digest_of_a_trace_without_start_data_is_the_one_older_backups_hold() -> None:
    plain = PersistedTrace(
        trace_id="t-plain",
        circuit="orders",
        schematic_version="1.0",
        events=(envelope("t-plain", 0, timestamp_ms=5),),
        created_at_ms=1,
        updated_at_ms=2,
    )
    event = plain.events[0]
    digest = rules.payload_digest(rules.encode_payload(event.payload))
    record = ["t-plain", "orders", "1.0", [[0, "Next", "node0", 5, digest]], [], [], None, None]
    old = hashlib.sha256(orjson.dumps([*record, 1, 2, None])).hexdigest()
    assert rules.trace_digest(plain) == old
    assert rules.trace_digest(replace(plain, input={"a": 1})) != old
    assert rules.trace_digest(replace(plain, attempts=2)) != old
    origin = ForkOrigin(trace_id="src", step=0)
    assert rules.trace_digest(replace(plain, forked_from=origin)) != old
