"""Migration 4 (issue 14, item 2): 64-bit steps on a live version-3 database, plain and
partitioned; and a new store's tables, made in one go, equal the migrated ones."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from ranvier import CompletionState, Intervention, StoreUnavailable, TraceStart
from ranvier.rules import MAX_INT
from ranvier.stores.postgres import PostgresPersistenceStore
from ranvier.stores.postgres.schema import LATEST_VERSION, MIGRATIONS
from ranvier.stores.postgres.sql import table_names
from tests.adapters.postgres import fresh_prefix, open_postgres
from tests.contract.helpers import envelope

STEP_COLUMNS = {
    "events": ["step"],
    "state": ["resumed_from_step", "attempts", "forked_at_step"],
}


async def _build(store: PostgresPersistenceStore, upto: int, partitions: int | None) -> None:
    """The tables as migrations 1 .. `upto` made them, the versions recorded."""
    t = table_names(store.table_prefix)
    async with store.pool.acquire() as conn, conn.transaction():
        await conn.execute(
            f"CREATE TABLE {t['schema_version']} (version integer PRIMARY KEY, "
            "description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for migration in MIGRATIONS[:upto]:
            for statement in migration.statements(t, partitions):
                await conn.execute(statement)
            await conn.execute(
                f"INSERT INTO {t['schema_version']} (version, description) VALUES ($1, $2)",
                migration.version,
                migration.description,
            )


async def _types(conn: asyncpg.Connection, table: str) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT column_name::text AS name, data_type::text AS type"
        " FROM information_schema.columns WHERE table_name = $1",
        table,
    )
    return {r["name"]: r["type"] for r in rows}


async def _rows(store: PostgresPersistenceStore) -> dict[str, list[dict[str, Any]]]:
    t = table_names(store.table_prefix)
    keys = {
        "state": "trace_id",
        "events": "trace_id, generation, step",
        "interventions": "trace_id, seq",
        "leases": "trace_id",
        "compensations": "idempotency_key",
    }
    async with store.pool.acquire() as conn:
        return {
            name: [dict(r) for r in await conn.fetch(f"SELECT * FROM {t[name]} ORDER BY {key}")]
            for name, key in keys.items()
        }


@pytest.mark.parametrize("partitions", [None, 4])
async def test_a_version_3_database_with_data_migrates_to_bigint_steps(
    partitions: int | None,
) -> None:
    store = await open_postgres(fresh_prefix(), partitions)
    t = table_names(store.table_prefix)
    try:
        await _build(store, 3, partitions)
        async with store.pool.acquire() as conn:
            assert (await _types(conn, t["events"]))["step"] == "integer"
        # every kind of row version 3 wrote, through the store
        for step in range(3):
            await store.append(envelope("open", step))
        await store.resume("open", 1)
        await store.save_intervention("open", Intervention(target_node="node1"))
        start = TraceStart(circuit="orders", schematic_version="1.0", input={"n": 1})
        assert await store.acquire_lease("started", "w1", 60_000, start=start) is not None
        await store.append(envelope("done", 0))
        await store.complete("done", CompletionState.SUCCESS)
        await store.compensations.claim("done:orders:boom")
        await store.compensations.mark_compensated("done:orders:other")
        before = await _rows(store)
        loaded = {tid: await store.load(tid) for tid in ("open", "started", "done")}

        await store.ensure_schema()

        async with store.pool.acquire() as conn:
            versions = await conn.fetch(f"SELECT version FROM {t['schema_version']}")
            assert sorted(r["version"] for r in versions) == [m.version for m in MIGRATIONS]
            for role, columns in STEP_COLUMNS.items():
                types = await _types(conn, t[role])
                assert {c: types[c] for c in columns} == dict.fromkeys(columns, "bigint")
            for i in range(partitions or 0):
                assert (await _types(conn, f"{t['events']}_{i}"))["step"] == "bigint"
        assert await _rows(store) == before  # every value kept
        assert {tid: await store.load(tid) for tid in loaded} == loaded
        # and the new range works on the old rows
        await store.append(envelope("open", 2**31))
        await store.append(envelope("open", MAX_INT))
        await store.resume("open", 2**31)
        trace = await store.load("open")
        assert trace is not None and [e.step for e in trace.events] == [0, 1, 2**31]
        assert trace.resumed_from_step == 2**31
    finally:
        await store.drop_schema()
        await store.close()


async def test_another_process_cached_statements_recover_after_the_migration() -> None:
    """A store whose connections prepared statements on the version-3 tables (another
    process, upgraded later) keeps working once the tables changed under it."""
    prefix = fresh_prefix()
    old = await open_postgres(prefix)
    new = await open_postgres(prefix)
    try:
        await _build(old, 3, None)
        await old.append(envelope("t", 0))
        await old.append(envelope("t", 1))
        await old.resume("t", 1)  # in a transaction: prepared there too
        assert await old.load("t") is not None
        await new.ensure_schema()
        await old.append(envelope("t", 2))
        try:
            await old.resume("t", 2)
        except StoreUnavailable as exc:  # stale inside a transaction: once, retryable
            assert "retry" in str(exc)
            await old.resume("t", 2)
        trace = await old.load("t")
        assert trace is not None and trace.resumed_from_step == 2
    finally:
        await new.drop_schema()
        await old.close()
        await new.close()


_CATALOG = """
SELECT 'column' AS kind, c.table_name::text AS name,
       concat_ws(' ', c.ordinal_position, c.column_name, c.data_type, c.is_nullable,
                 c.column_default, c.collation_name) AS detail
FROM information_schema.columns c WHERE c.table_name LIKE $1
UNION ALL
SELECT 'index', i.tablename::text, i.indexdef FROM pg_indexes i WHERE i.tablename LIKE $1
UNION ALL
SELECT 'constraint', r.conrelid::regclass::text, r.conname || ' ' || pg_get_constraintdef(r.oid)
FROM pg_constraint r WHERE r.conrelid::regclass::text LIKE $1
UNION ALL
SELECT 'partition', c.relname::text, pg_get_expr(c.relpartbound, c.oid)
FROM pg_class c WHERE c.relispartition AND c.relname LIKE $1
"""


async def _catalog(store: PostgresPersistenceStore) -> list[tuple[str, str, str]]:
    prefix = store.table_prefix
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(_CATALOG, f"{prefix}\\_%")
    found = [(r["kind"], r["name"], r["detail"] or "") for r in rows]
    return sorted(tuple(v.replace(prefix, "P") for v in row) for row in found)  # type: ignore[misc]


@pytest.mark.parametrize("partitions", [None, 4])
async def test_new_tables_equal_migrated_ones(partitions: int | None) -> None:
    fresh = await open_postgres(fresh_prefix(), partitions)
    migrated = await open_postgres(fresh_prefix(), partitions)
    try:
        await fresh.ensure_schema()
        await _build(migrated, len(MIGRATIONS), partitions)
        await migrated.ensure_schema()  # nothing left to apply: checks only
        assert MIGRATIONS[-1].version == LATEST_VERSION
        catalog = await _catalog(fresh)
        assert catalog == await _catalog(migrated)
        assert any(kind == "index" and "compensated_at" in d for kind, _, d in catalog)
    finally:
        for store in (fresh, migrated):
            await store.drop_schema()
            await store.close()
