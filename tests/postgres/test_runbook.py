"""The runbook's PostgreSQL commands, run verbatim against a fresh database."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ranvier import CompletionState, Intervention, PersistedTrace, TraceStart, rules
from ranvier.stores.postgres import PostgresPersistenceStore
from tests.contract.helpers import envelope
from tests.postgres.conftest import create_database, database_url, drop_database
from tests.servers import POSTGRES_URL

# Copied verbatim from the runbook, section 3 ("PostgreSQL — TTL-based purge").
RUNBOOK_PURGE = """\
-- Purge events for traces completed more than 30 days ago
DELETE FROM ranvier_persistence_events
WHERE trace_id IN (
    SELECT trace_id FROM ranvier_persistence_state
    WHERE completion IS NOT NULL
      AND completed_at < NOW() - INTERVAL '30 days'
);

DELETE FROM ranvier_persistence_state
WHERE completion IS NOT NULL
  AND completed_at < NOW() - INTERVAL '30 days';
"""
# Section 5, "Verify row counts after restore".
RUNBOOK_VERIFY = "SELECT COUNT(*) FROM ranvier_persistence_state WHERE completion IS NOT NULL;"


def _server_args(database: str) -> list[str]:
    """-h/-p/-U of POSTGRES_URL for the command-line tools, and the database."""
    url = urlsplit(POSTGRES_URL)
    host, port, user = url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres"
    return ["-h", host, "-p", str(port), "-U", user, "-d", database]


def _run(*command: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command[0]} failed: {done.stderr}"
    return done.stdout


async def _store(database: str, partitions: int | None = None) -> PostgresPersistenceStore:
    return await PostgresPersistenceStore.connect(
        database_url(database), min_connections=1, max_connections=4, partitions=partitions
    )


async def test_runbook_purge_sql_and_verification_query_work_verbatim(
    fresh_database: str,
) -> None:
    store = await _store(fresh_database)
    try:
        await store.ensure_schema()
        for trace_id in ("old", "recent", "running"):
            await store.append(envelope(trace_id, 0))
            await store.append(envelope(trace_id, 1))
        await store.save_intervention("old", Intervention(target_node="node1"))
        await store.complete("old", CompletionState.SUCCESS)
        await store.complete("recent", CompletionState.FAULT)
        async with store.pool.acquire() as conn:  # age one trace past the 30-day window
            await conn.execute(
                "UPDATE ranvier_persistence_state SET completed_at = now() - interval '31 days'"
                " WHERE trace_id = 'old'"
            )
        psql = ["psql", "-v", "ON_ERROR_STOP=1", "-At", *_server_args(fresh_database)]
        out = _run(*psql, "-c", RUNBOOK_PURGE)
        assert out.split() == ["DELETE", "2", "DELETE", "1"]  # old's 2 events, old's state
        assert _run(*psql, "-c", RUNBOOK_VERIFY).strip() == "1"
        assert await store.load("old") is None
        async with store.pool.acquire() as conn:
            orphans = await conn.fetchval(
                "SELECT count(*) FROM ranvier_persistence_interventions WHERE trace_id = 'old'"
            )
        assert orphans == 0
        for trace_id in ("recent", "running"):
            trace = await store.load(trace_id)
            assert trace is not None and len(trace.events) == 2
    finally:
        await store.close()


async def test_partitions_are_named_as_in_the_runbook(fresh_database: str) -> None:
    store = await _store(fresh_database, partitions=16)
    try:
        await store.ensure_schema()
        async with store.pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound"
                " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'ranvier_persistence_events'::regclass"
            )
            strategy = await conn.fetchval(
                "SELECT partstrat::text FROM pg_partitioned_table"
                " WHERE partrelid = 'ranvier_persistence_events'::regclass"
            )
        assert strategy == "h"
        bounds = {r["relname"]: r["bound"] for r in rows}
        assert bounds == {
            f"ranvier_persistence_events_{i}": f"FOR VALUES WITH (modulus 16, remainder {i})"
            for i in range(16)
        }
        await store.append(envelope("p", 0))
        assert (await store.load("p")) is not None
    finally:
        await store.close()


async def _fill(store: PostgresPersistenceStore) -> list[str]:
    """Traces with everything a trace can hold; returns their ids."""
    ids = [f"trace-{n}" for n in range(12)]
    await asyncio.gather(*(store.append(envelope(t, s)) for t in ids for s in range(3)))
    await store.resume(ids[0], 0)
    await store.append(envelope(ids[0], 1, {"rewritten": True}))
    await store.save_intervention(ids[1], Intervention(target_node="node2", payload_override=[1]))
    await store.complete(ids[2], CompletionState.FAULT)
    await store.complete(ids[2], CompletionState.COMPENSATED)
    await store.complete(ids[3], CompletionState.SUCCESS)
    assert await store.acquire_lease(ids[4], "worker-1", 60_000) is not None
    started = TraceStart(circuit="orders", schematic_version="1.0", input={"order": "o-7"})
    assert await store.acquire_lease("started", "worker-2", 60_000, start=started) is not None
    ids.append("started")  # no events yet: its input, 1 attempt
    await store.compensations.mark_compensated(f"{ids[2]}:orders:boom")
    assert await store.compensations.claim("unfinished-key")
    return ids


async def _digests(store: PostgresPersistenceStore, ids: list[str]) -> dict[str, str]:
    traces: list[PersistedTrace | None] = [await store.load(t) for t in ids]
    assert all(t is not None for t in traces)
    return {t.trace_id: rules.trace_digest(t) for t in traces if t is not None}


@pytest.mark.parametrize("partitions", [None, 16])
async def test_pg_dump_and_pg_restore_give_back_every_trace(
    fresh_database: str, tmp_path: Path, partitions: int | None
) -> None:
    store = await _store(fresh_database, partitions)
    try:
        await store.ensure_schema()
        ids = await _fill(store)
        before = await _digests(store, ids)
        keys = [await store.compensations.get(k) for k in ("trace-2:orders:boom", "unfinished-key")]
    finally:
        await store.close()
    dump = tmp_path / "ranvier_persistence.dump"
    _run(
        "pg_dump",
        *_server_args(fresh_database),
        "-t",
        "ranvier_persistence_*",
        "--format=custom",
        "-f",
        str(dump),
    )
    target = await create_database()
    try:
        _run("pg_restore", *_server_args(target), str(dump))
        restored = await _store(target, partitions)
        try:
            await restored.ensure_schema()  # finds the restored version: nothing to do
            assert await _digests(restored, ids) == before
            comps = restored.compensations
            assert [await comps.get(k) for k in ("trace-2:orders:boom", "unfinished-key")] == keys
            lease = await restored.get_lease("trace-4")
            assert lease is not None and lease.holder == "worker-1"
            await restored.append(envelope("after-restore", 0))
        finally:
            await restored.close()
    finally:
        await drop_database(target)
