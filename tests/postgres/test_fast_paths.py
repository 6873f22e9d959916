"""The fast paths keep the semantics: kept connections, one-envelope flushes, JSON batches."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import pytest

from ranvier import (
    CompletionState,
    InvalidInput,
    LeaseLost,
    OutcomeKind,
    TraceCompleted,
    TraceNotFound,
    TraceStart,
)
from ranvier.stores.postgres import PostgresPersistenceStore
from ranvier.stores.postgres.connection import LINGER_SECONDS
from ranvier.stores.postgres.schema import MIGRATIONS
from ranvier.stores.postgres.sql import render, table_names
from tests.adapters.postgres import fresh_prefix
from tests.contract.helpers import envelope, new_trace_id
from tests.servers import POSTGRES_URL


async def test_a_kept_connection_goes_back_to_a_one_connection_pool() -> None:
    store = await PostgresPersistenceStore.connect(
        POSTGRES_URL, table_prefix=fresh_prefix(), min_connections=1, max_connections=1
    )
    try:
        await store.ensure_schema()
        await store.append(envelope(new_trace_id(), 0))  # the store now keeps the connection
        async with store.pool.acquire(timeout=LINGER_SECONDS * 50) as conn:  # ... for a while
            assert await conn.fetchval("SELECT 1") == 1
        await store.append(envelope(new_trace_id(), 0))
    finally:
        await store.drop_schema()
        await store.close()


async def test_a_kept_connection_killed_while_idle_is_replaced(
    pg_store: PostgresPersistenceStore,
) -> None:
    tid = new_trace_id()
    await pg_store.append(envelope(tid, 0))
    kept = pg_store._connections._idle
    assert kept, "the store keeps the connection it just used"
    pids = [conn.get_server_pid() for conn in kept]
    async with pg_store.pool.acquire() as admin:
        for pid in pids:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    await asyncio.sleep(0.05)  # the client sees the socket close (asyncpg may hand it back)
    await pg_store.append(envelope(tid, 1))
    trace = await pg_store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]


async def test_a_kept_connection_the_pool_took_back_is_dropped(
    pg_store: PostgresPersistenceStore,
) -> None:
    """A connection lost while kept is handed back to the pool by asyncpg itself (as in a
    server restart): the proxy the store kept then raises on every call."""
    tid = new_trace_id()
    await pg_store.append(envelope(tid, 0))
    kept = list(pg_store._connections._idle)
    assert kept
    for conn in kept:
        conn.terminate()
    await pg_store.append(envelope(tid, 1))
    trace = await pg_store.load(tid)
    assert trace is not None and [e.step for e in trace.events] == [0, 1]


async def test_a_value_out_of_range_fails_only_its_own_append_in_a_batch(
    pg_store: PostgresPersistenceStore,
) -> None:
    """A value the database refuses (here a node id past a column narrowed by hand)
    fails its own append only, as InvalidInput; the rest of its batch is written."""
    async with pg_store.pool.acquire() as conn:
        await conn.execute(
            f"ALTER TABLE {pg_store.table_prefix}_events ALTER COLUMN node_id TYPE varchar(12)"
        )
    others = [new_trace_id() for _ in range(20)]
    bad = new_trace_id("bad")
    results = await asyncio.gather(
        *(pg_store.append(envelope(t, 0)) for t in others[:10]),
        pg_store.append(envelope(bad, 2**31, node_id="a-node-id-past-12")),
        *(pg_store.append(envelope(t, 2**40, node_id="big")) for t in others[10:]),
        return_exceptions=True,
    )
    assert [i for i, r in enumerate(results) if isinstance(r, BaseException)] == [10]
    assert isinstance(results[10], InvalidInput)
    for t in others:
        trace = await pg_store.load(t)
        assert trace is not None and len(trace.events) == 1
    assert await pg_store.load(bad) is None


async def test_batched_payloads_keep_their_exact_json(pg_store: PostgresPersistenceStore) -> None:
    payloads = [{"big": 1e20, "text": "é\u2028\"'\\", "n": [None, True, 0.5]}, None, [], "s", 7]
    traces = [new_trace_id() for _ in payloads]
    envelopes = [replace(envelope(t, 0), payload=p) for t, p in zip(traces, payloads, strict=True)]
    await asyncio.gather(*(pg_store.append(e) for e in envelopes))  # 1 alone, then a batch
    for t, p in zip(traces, payloads, strict=True):
        trace = await pg_store.load(t)
        assert trace is not None and trace.events[0].payload == p
        assert type(trace.events[0].payload) is type(p)


async def test_one_statement_complete_keeps_the_rules(pg_store: PostgresPersistenceStore) -> None:
    tid = new_trace_id()
    lease = await pg_store.acquire_lease(tid, "w1", 30_000)
    assert lease is not None
    await pg_store.append(envelope(tid, 0, kind=OutcomeKind.FAULT), fence=lease.token)
    with pytest.raises(LeaseLost):
        await pg_store.complete(tid, CompletionState.FAULT, fence=lease.token + 1)
    await pg_store.complete(tid, CompletionState.FAULT, fence=lease.token)
    assert await pg_store.get_lease(tid) is None  # released in the same statement
    await pg_store.complete(tid, CompletionState.FAULT, fence=lease.token + 1)  # a no-op first
    with pytest.raises(TraceCompleted):
        await pg_store.complete(tid, CompletionState.SUCCESS)
    with pytest.raises(LeaseLost):  # the released lease's token no longer fences
        await pg_store.complete(tid, CompletionState.COMPENSATED, fence=lease.token)
    again = await pg_store.acquire_lease(tid, "w2", 30_000)
    assert again is not None
    await pg_store.complete(tid, CompletionState.COMPENSATED, fence=again.token)
    assert await pg_store.get_lease(tid) is None
    trace = await pg_store.load(tid)
    assert trace is not None and trace.completion is CompletionState.COMPENSATED


@pytest.mark.parametrize("partitions", [None, 4])
async def test_a_live_version_1_database_upgrades(partitions: int | None) -> None:
    """Tables made by migration 1 and written the old way (the append touching the state
    row, events without `written_at`) upgrade in place and read back the same."""
    store = await PostgresPersistenceStore.connect(
        POSTGRES_URL,
        table_prefix=fresh_prefix(),
        partitions=partitions,
        min_connections=1,
        max_connections=2,
    )
    t = table_names(store.table_prefix)
    try:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"CREATE TABLE {t['schema_version']} (version integer PRIMARY KEY, "
                "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for statement in MIGRATIONS[0].statements(t, partitions):
                await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {t['schema_version']} (version, description) VALUES (1, 'initial')"
            )
            await conn.execute(
                f"INSERT INTO {t['state']} (trace_id, circuit, schematic_version, created_at, "
                "updated_at) VALUES ('old', 'orders', '1.0', timestamptz 'epoch' + interval "
                "'1000 ms', timestamptz 'epoch' + interval '5000 ms')"
            )
            await conn.execute(
                f"INSERT INTO {t['events']} (trace_id, step, schematic_version, outcome_kind, "
                "timestamp_ms, payload) VALUES ('old', 0, '1.0', 'Next', 7, '{\"a\": 1}')"
            )
        await store.ensure_schema()
        before = await store.load("old")
        assert before is not None and before.updated_at_ms == 5000
        assert [e.payload for e in before.events] == [{"a": 1}]
        await store.append(envelope("old", 1))
        after = await store.load("old")
        assert after is not None and [e.step for e in after.events] == [0, 1]
        assert after.updated_at_ms > 5000
        page = await store.list_traces(updated_before_ms=after.updated_at_ms + 1)
        assert [s.trace_id for s in page.items] == ["old"]
        assert page.items[0].updated_at_ms == after.updated_at_ms
        assert (await store.list_traces(updated_before_ms=after.updated_at_ms)).items == ()
    finally:
        await store.drop_schema()
        await store.close()


async def test_batched_appends_look_traces_up_by_key_after_the_tables_grew(
    pg_store: PostgresPersistenceStore,
) -> None:
    """Plans are generic and kept per connection, so they are made while the tables are
    small; a seq scan chosen then would read the whole state table on every batch later
    (the 64-in-flight runtime bench lost 30% in three rounds to it)."""
    t = table_names(pg_store.table_prefix)
    async with pg_store.pool.acquire() as conn:  # a store connection: the store's settings
        fill = (
            f"INSERT INTO {t['state']} (trace_id, circuit, schematic_version, created_at,"
            " updated_at) SELECT $1 || g, 'c', '1', now(), now() FROM generate_series(1, $2) g"
        )
        await conn.execute(fill, "small-", 100)  # a page or two, as after the first runs
        await conn.execute(f"PREPARE grown AS {render(pg_store.table_prefix).append}")
        await conn.execute("EXPLAIN EXECUTE grown('[]', '{}')")  # planned now, kept
        await conn.execute(fill, "grown-", 20000)
        plan = "\n".join(row[0] for row in await conn.fetch("EXPLAIN EXECUTE grown('[]', '{}')"))
        await conn.execute("DEALLOCATE grown")
    index = t["state"] + "_pkey"
    assert f"Index Scan on {index}" in plan or f"Index Scan using {index}" in plan, plan
    assert f"Seq Scan on {t['state']}" not in plan, plan
    tids = [new_trace_id() for _ in range(8)]
    for step in range(3):
        await asyncio.gather(*(pg_store.append(envelope(tid, step)) for tid in tids))
    trace = await pg_store.load(tids[0])
    assert trace is not None and [e.step for e in trace.events] == [0, 1, 2]


async def test_concurrent_completes_share_a_statement_and_keep_each_callers_outcome(
    pg_store: PostgresPersistenceStore,
) -> None:
    """Completes of concurrent runs go out as COMPLETE_BATCH; every caller still gets what
    COMPLETE alone would give it: done, a no-op, or the rules' error."""
    sizes: list[int] = []
    flush = pg_store._completer.flush

    async def counted(batch: Any) -> Any:
        sizes.append(len(batch))
        return await flush(batch)

    pg_store._completer.flush = counted
    groups = {name: [new_trace_id(name) for _ in range(8)] for name in _OUTCOMES}
    for name, tids in groups.items():
        for tid in tids if name != "missing" else ():
            await pg_store.append(envelope(tid, 0))
            if name in ("same", "other"):
                await pg_store.complete(tid, CompletionState.SUCCESS)
            if name == "faulted":
                await pg_store.complete(tid, CompletionState.FAULT)
    tokens: dict[str, int] = {}
    for tid in groups["fenced"] + groups["stale"]:
        lease = await pg_store.acquire_lease(tid, "w", 30_000)
        assert lease is not None
        tokens[tid] = lease.token if tid in groups["fenced"] else lease.token + 1
    sizes.clear()
    calls = [
        (name, tid, pg_store.complete(tid, _OUTCOMES[name][0], fence=tokens.get(tid)))
        for name, tids in groups.items()
        for tid in tids
    ]
    results = await asyncio.gather(*(call for _, _, call in calls), return_exceptions=True)

    assert max(sizes) > 1, sizes  # they did share statements
    for (name, tid, _), result in zip(calls, results, strict=True):
        expected_error = _OUTCOMES[name][1]
        if expected_error is None:
            assert result is None, (name, result)
        else:
            assert isinstance(result, expected_error), (name, result)
        trace = await pg_store.load(tid)
        if name == "missing":
            assert trace is None
        else:
            assert trace is not None and trace.completion is _OUTCOMES[name][2], name
    for tid in groups["fenced"]:
        assert await pg_store.get_lease(tid) is None  # released with the completion
    for tid in groups["stale"]:
        assert await pg_store.get_lease(tid) is not None  # untouched


_OUTCOMES: dict[str, tuple[CompletionState, type[Exception] | None, CompletionState | None]] = {
    # group: (completion asked for, error expected, completion stored afterwards)
    "open": (CompletionState.SUCCESS, None, CompletionState.SUCCESS),
    "fenced": (CompletionState.SUCCESS, None, CompletionState.SUCCESS),
    "stale": (CompletionState.SUCCESS, LeaseLost, None),
    "same": (CompletionState.SUCCESS, None, CompletionState.SUCCESS),
    "other": (CompletionState.FAULT, TraceCompleted, CompletionState.SUCCESS),
    "faulted": (CompletionState.COMPENSATED, None, CompletionState.COMPENSATED),
    "missing": (CompletionState.SUCCESS, TraceNotFound, None),
}


async def test_concurrent_lease_acquisitions_share_a_statement_and_each_gets_its_answer(
    pg_store: PostgresPersistenceStore,
) -> None:
    """Acquisitions of concurrent runs go out as ACQUIRE_LEASE_BATCH; each caller gets the
    lease it would get alone (a new one, the next token after a release or an expiry), or
    None where another holder's lease is live."""
    sizes: list[int] = []
    flush = pg_store._leases.acquirer.flush

    async def counted(batch: Any) -> Any:
        sizes.append(len(batch))
        return await flush(batch)

    fresh = [new_trace_id("fresh") for _ in range(8)]
    held = [new_trace_id("held") for _ in range(8)]
    released = [new_trace_id("released") for _ in range(8)]
    expired = [new_trace_id("expired") for _ in range(8)]
    before: dict[str, int] = {}
    for tid in held + released + expired:
        lease = await pg_store.acquire_lease(tid, "other", 1 if tid in expired else 30_000)
        assert lease is not None
        before[tid] = lease.token
        if tid in released:
            assert await pg_store.release_lease(lease)
    await asyncio.sleep(0.01)  # the 1 ms leases have expired
    pg_store._leases.acquirer.flush = counted
    order = fresh + held + released + expired
    leases = await asyncio.gather(*(pg_store.acquire_lease(t, "me", 30_000) for t in order))

    assert max(sizes) > 1, sizes  # they did share statements
    got = dict(zip(order, leases, strict=True))
    for tid in fresh:
        lease = got[tid]
        assert lease is not None and lease.holder == "me" and lease.token == 1
    for tid in held:
        assert got[tid] is None
        assert (await pg_store.get_lease(tid)).holder == "other"  # type: ignore[union-attr]
    for tid in released + expired:
        lease = got[tid]
        assert lease is not None and lease.token == before[tid] + 1
        assert await pg_store.get_lease(tid) == lease


async def test_concurrent_starts_share_a_statement_and_each_creates_its_trace_with_its_input(
    pg_store: PostgresPersistenceStore,
) -> None:
    """Starts of concurrent runs go out as ACQUIRE_LEASE_BATCH: each new trace is created
    with its own input (exact JSON) and one attempt; a stored unfinished trace only counts
    an attempt, with a start or without; a completed one counts none; a live lease held
    by another takes nothing and creates nothing: what each call would do alone."""
    sizes: list[int] = []
    flush = pg_store._leases.acquirer.flush

    async def counted(batch: Any) -> Any:
        sizes.append(len(batch))
        return await flush(batch)

    inputs = [{"big": 1e20, "text": "é\u2028\"'\\", "n": [None, True, 0.5]}, None, [], "s", 7]
    new = [new_trace_id("new") for _ in range(16)]
    stored = [new_trace_id("stored") for _ in range(8)]  # open, acquired once before
    resumed = [new_trace_id("resumed") for _ in range(8)]  # the same, acquired without start
    done = [new_trace_id("done") for _ in range(8)]
    held = [new_trace_id("held") for _ in range(8)]  # not stored, leased by another
    for tid in stored + resumed + done:
        await pg_store.append(envelope(tid, 0))
    for tid in done:
        await pg_store.complete(tid, CompletionState.SUCCESS)
    for tid in stored + resumed:
        lease = await pg_store.acquire_lease(tid, "before", 30_000)
        assert lease is not None and await pg_store.release_lease(lease)
    for tid in held:
        assert await pg_store.acquire_lease(tid, "other", 30_000) is not None
    before = {tid: await pg_store.load(tid) for tid in stored + resumed + done}

    def start(tid: str) -> TraceStart | None:
        if tid in resumed:
            return None
        value = inputs[new.index(tid) % len(inputs)] if tid in new else {"other": tid}
        return TraceStart(circuit="orders", schematic_version="2.0", input=value)

    pg_store._leases.acquirer.flush = counted
    groups = zip(new[:8], new[8:], stored, resumed, done, held, strict=True)
    order = [tid for group in groups for tid in group]  # every kind in every batch
    leases = await asyncio.gather(
        *(pg_store.acquire_lease(t, "me", 30_000, start=start(t)) for t in order)
    )

    assert max(sizes) > 1, sizes  # they did share statements
    got = dict(zip(order, leases, strict=True))
    for i, tid in enumerate(new):
        lease = got[tid]
        assert lease is not None and (lease.holder, lease.token) == ("me", 1)
        trace = await pg_store.load(tid)
        assert trace is not None and trace.events == () and trace.completion is None
        assert (trace.circuit, trace.schematic_version) == ("orders", "2.0")
        expected = inputs[i % len(inputs)]
        assert trace.input == expected and type(trace.input) is type(expected), tid
        assert trace.attempts == 1 and trace.forked_from is None
    for tid in stored + resumed + done:
        lease = got[tid]
        assert lease is not None and lease.token == (1 if tid in done else 2)
        old, trace = before[tid], await pg_store.load(tid)
        assert old is not None and trace is not None
        attempts = old.attempts if tid in done else old.attempts + 1
        assert trace == replace(old, attempts=attempts), tid  # nothing else changed
        assert trace.attempts == (0 if tid in done else 2)
    for tid in held:
        assert got[tid] is None
        assert await pg_store.load(tid) is None
        assert (await pg_store.get_lease(tid)).holder == "other"  # type: ignore[union-attr]
    page = await pg_store.list_traces(min_attempts=2)
    assert sorted(s.trace_id for s in page.items) == sorted(stored + resumed)
    assert (await pg_store.list_traces(min_attempts=2**70)).items == ()  # beyond the column


@pytest.mark.parametrize(
    ("statement", "arguments"),
    [
        ("acquire_lease", "('t', 'h', 1000, 'c', '1', '{}')"),
        ("acquire_lease_batch", "('[]')"),
    ],
)
async def test_lease_acquisitions_look_traces_up_by_key_after_the_tables_grew(
    pg_store: PostgresPersistenceStore, statement: str, arguments: str
) -> None:
    """As the append batch: the generic plan is made on small tables and kept, so every
    lookup of a state or a lease row must go through its primary key."""
    t = table_names(pg_store.table_prefix)
    sql = getattr(render(pg_store.table_prefix), statement)
    fill = (
        f"WITH s AS (INSERT INTO {t['state']} (trace_id, circuit, schematic_version,"
        " created_at, updated_at) SELECT $1 || g, 'c', '1', now(), now()"
        " FROM generate_series(1, $2) g)"
        f" INSERT INTO {t['leases']} (trace_id, holder, token, expires_at)"
        " SELECT $1 || g, 'h', 1, now() FROM generate_series(1, $2) g"
    )
    async with pg_store.pool.acquire() as conn:
        await conn.execute(fill, "small-", 100)
        await conn.execute(f"PREPARE grown AS {sql}")
        await conn.execute(f"EXPLAIN EXECUTE grown{arguments}")  # planned now, kept
        await conn.execute(fill, "grown-", 20000)
        plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN EXECUTE grown{arguments}"))
        await conn.execute("DEALLOCATE grown")
    for table in (t["state"], t["leases"]):
        assert f"Seq Scan on {table}" not in plan, plan
    assert f"{t['state']}_pkey" in plan, plan
