"""Schema creation, versions, prefixes and URLs of the PostgreSQL store."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

import pytest

from ranvier import (
    CompletionState,
    Intervention,
    InvalidInput,
    SchemaMismatch,
    SchemaMissing,
    TraceStart,
    open_store,
)
from ranvier.stores.postgres import PostgresPersistenceStore, from_url
from ranvier.stores.postgres.schema import LATEST_VERSION, MIGRATIONS
from ranvier.stores.postgres.sql import table_names
from tests.adapters.postgres import fresh_prefix, open_postgres
from tests.contract.helpers import envelope, new_trace_id
from tests.servers import POSTGRES_URL

_ENSURE_IN_A_PROCESS = """
import asyncio, sys
from ranvier.stores.postgres import PostgresPersistenceStore

async def main(url, prefix):
    store = await PostgresPersistenceStore.connect(
        url, table_prefix=prefix, min_connections=1, max_connections=1)
    try:
        await store.ensure_schema()
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _versions(store: PostgresPersistenceStore) -> list[int]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT version FROM {store.table_prefix}_schema_version ORDER BY version"
        )
    return [r["version"] for r in rows]


async def test_ensure_schema_from_many_tasks_and_processes_at_once() -> None:
    prefix = fresh_prefix()
    stores = [await open_postgres(prefix, partitions=16) for _ in range(6)]
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _ENSURE_IN_A_PROCESS,
            POSTGRES_URL,
            prefix,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    try:
        await asyncio.gather(*(s.ensure_schema() for s in stores))
        for process in processes:
            _, stderr = await process.communicate()
            assert process.returncode == 0, stderr.decode()
        assert await _versions(stores[0]) == [m.version for m in MIGRATIONS]
        await stores[0].ensure_schema()  # and again: nothing to do
        await stores[1].append(envelope("t", 0))
        assert await stores[2].load("t") is not None
    finally:
        await stores[0].drop_schema()
        for store in stores:
            await store.close()


async def test_a_newer_schema_is_refused(pg_store: PostgresPersistenceStore) -> None:
    async with pg_store.pool.acquire() as conn:
        await conn.execute(
            f"INSERT INTO {pg_store.table_prefix}_schema_version (version, description)"
            " VALUES ($1, 'from the future')",
            LATEST_VERSION + 1,
        )
    with pytest.raises(SchemaMismatch, match="upgrade ranvier"):
        await pg_store.ensure_schema()


async def test_partitions_cannot_change_after_creation(pg_store: PostgresPersistenceStore) -> None:
    with pytest.raises(InvalidInput, match="not partitioned"):
        await pg_store.ensure_schema(partitions=16)
    with pytest.raises(InvalidInput, match="partitions"):
        await pg_store.ensure_schema(partitions=0)


async def test_missing_tables_say_to_call_ensure_schema() -> None:
    store = await open_postgres(fresh_prefix())
    try:
        with pytest.raises(SchemaMissing, match="ensure_schema"):
            await store.load("t")
    finally:
        await store.close()


@pytest.mark.parametrize(
    "prefix",
    ["", "Upper", "1abc", "bad-prefix", "x; DROP TABLE y", 'q"uote', "a b", "x" * 39, None, 7],
)
async def test_unsafe_table_prefixes_are_invalid_input(
    pg_store: PostgresPersistenceStore, prefix: object
) -> None:
    with pytest.raises(InvalidInput):
        pg_store.with_table_prefix(prefix)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        await PostgresPersistenceStore.connect(POSTGRES_URL, table_prefix=prefix)


async def test_with_table_prefix_shares_the_pool_over_other_tables(
    pg_store: PostgresPersistenceStore,
) -> None:
    other = pg_store.with_table_prefix(fresh_prefix())
    try:
        assert other.pool is pg_store.pool
        await other.ensure_schema()
        await other.append(envelope("shared", 0))
        assert await other.load("shared") is not None
        assert await pg_store.load("shared") is None
    finally:
        await other.drop_schema()
        await other.close()  # does not close the shared pool
    assert await pg_store.load("shared") is None


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_open_store_takes_both_schemes_and_the_pool_options(scheme: str) -> None:
    prefix = fresh_prefix()
    url = scheme + POSTGRES_URL[POSTGRES_URL.index("://") :]
    store = await open_store(url, table_prefix=prefix, min_connections=1, max_connections=2)
    try:
        assert isinstance(store, PostgresPersistenceStore)
        assert store.adapter == "postgres" and store.capabilities.durable
        tid = new_trace_id()
        await store.append(envelope(tid, 0))
        assert (await store.load(tid)) is not None
        assert store.compensations is store.compensations
        async with store.pool.acquire() as conn:
            assert await conn.fetchval(
                "SELECT to_regclass($1) IS NOT NULL", f"{prefix}_compensation_idempotency"
            )
    finally:
        await store.drop_schema()
        await store.close()
    direct = await from_url(url, table_prefix=prefix, min_connections=0, max_connections=1)
    await direct.close()


async def test_list_traces_reads_pages_through_the_primary_key(
    pg_store: PostgresPersistenceStore,
) -> None:
    await asyncio.gather(*(pg_store.append(envelope(f"t{n:05d}", 0)) for n in range(3000)))
    state = f"{pg_store.table_prefix}_state"
    async with pg_store.pool.acquire() as conn:
        await conn.execute(f"ANALYZE {state}")
        plan = "\n".join(
            r[0]
            for r in await conn.fetch(
                "EXPLAIN " + pg_store._sql.list_traces, "t01000", None, None, "any", 100, None
            )
        )
    assert f"Index Scan using {state}_pkey" in plan, plan
    page = await pg_store.list_traces(limit=100, cursor=None)
    assert [s.trace_id for s in page.items][:2] == ["t00000", "t00001"]


async def test_a_live_version_2_database_migrates_to_the_durable_start_in_place() -> None:
    """Tables at version 2, with a trace, a lease and an intervention, gain `input`,
    `attempts` and the fork origin without a rewrite (same files: migration 3's ALTERs
    are instant; migration 4's rewrite is tested in test_migrations.py), and every trace
    reads back as before, with no input, 0 attempts and no fork origin."""
    store = await open_postgres(fresh_prefix())
    t = table_names(store.table_prefix)
    try:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"CREATE TABLE {t['schema_version']} (version integer PRIMARY KEY, "
                "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for migration in MIGRATIONS[:2]:
                for statement in migration.statements(t, None):
                    await conn.execute(statement)
                await conn.execute(
                    f"INSERT INTO {t['schema_version']} (version, description) VALUES ($1, $2)",
                    migration.version,
                    migration.description,
                )
        # rows as version 2 wrote them (those statements are unchanged since), and a lease
        for step in range(2):
            await store.append(envelope("open", step))
        await store.save_intervention("open", Intervention(target_node="node1"))
        await store.append(envelope("done", 0))
        await store.complete("done", CompletionState.SUCCESS)
        async with store.pool.acquire() as conn:
            await conn.execute(
                f"INSERT INTO {t['leases']} (trace_id, holder, token, expires_at)"
                " VALUES ('held', 'w0', 7, now() + interval '1 minute')"
            )
        before = await _rows(store, t)
        files = await _relfilenodes(store, t["state"], t["events"])
        async with store.pool.acquire() as conn:  # migration 3 alone, as its release did
            for statement in MIGRATIONS[2].statements(t, None):
                await conn.execute(statement)
        assert await _relfilenodes(store, t["state"], t["events"]) == files  # no rewrite

        await store.ensure_schema()

        assert await _versions(store) == [m.version for m in MIGRATIONS]
        after = await _rows(store, t)
        new_columns = {"input": None, "attempts": 0, "forked_from": None, "forked_at_step": None}
        assert after["state"] == [{**row, **new_columns} for row in before["state"]]
        assert {k: v for k, v in after.items() if k != "state"} == {
            k: v for k, v in before.items() if k != "state"
        }
        trace = await store.load("open")
        assert trace is not None and [e.step for e in trace.events] == [0, 1]
        assert [i.target_node for i in trace.interventions] == ["node1"]
        assert (trace.input, trace.attempts, trace.forked_from) == (None, 0, None)
        done = await store.load("done")
        assert done is not None and done.completion is CompletionState.SUCCESS
        assert (done.input, done.attempts, done.forked_from) == (None, 0, None)
        lease = await store.get_lease("held")
        assert lease is not None and (lease.holder, lease.token) == ("w0", 7)
        # and the new columns work on the old rows
        start = TraceStart(circuit="orders", schematic_version="1.0", input={"ignored": 1})
        again = await store.acquire_lease("open", "w1", 60_000, start=start)
        assert again is not None
        reopened = await store.load("open")
        assert reopened is not None and (reopened.input, reopened.attempts) == (None, 1)
        page = await store.list_traces(min_attempts=1)
        assert [(s.trace_id, s.attempts) for s in page.items] == [("open", 1)]
    finally:
        await store.drop_schema()
        await store.close()


async def _relfilenodes(store: PostgresPersistenceStore, *tables: str) -> list[int]:
    async with store.pool.acquire() as conn:
        return [
            await conn.fetchval("SELECT pg_relation_filenode($1::regclass)", table)
            for table in tables
        ]


async def _rows(store: PostgresPersistenceStore, t: dict[str, str]) -> dict[str, list[Any]]:
    """Every row of the trace tables, as dicts, in key order."""
    keys = {"state": "trace_id", "events": "trace_id, generation, step"}
    keys |= {"interventions": "trace_id, seq", "leases": "trace_id"}
    async with store.pool.acquire() as conn:
        return {
            name: [dict(r) for r in await conn.fetch(f"SELECT * FROM {t[name]} ORDER BY {key}")]
            for name, key in keys.items()
        }
