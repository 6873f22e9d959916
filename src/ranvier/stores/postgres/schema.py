"""The PostgreSQL schema: an ordered list of migrations and a recorded version.

`ensure_schema` runs in one transaction under an advisory lock derived from the table
prefix, so any number of processes may call it at once: one applies the missing
migrations, the others wait and then find nothing left to do. A later release appends
a migration to `MIGRATIONS`; a database newer than this code is refused, and so is a
table whose columns are not what the migrations make (`catalog.check_tables`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from ranvier.errors import InvalidInput, SchemaMismatch
from ranvier.stores.postgres.catalog import check_tables
from ranvier.stores.postgres.sql import table_names

MAX_PARTITIONS = 1024
_COMPLETIONS = "'success', 'fault', 'cancelled', 'compensated'"


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: Callable[[dict[str, str], int | None], list[str]]
    """DDL for tables named as in `table_names(prefix)`, given the partition count."""


def _initial(t: dict[str, str], partitions: int | None) -> list[str]:
    partitioned = " PARTITION BY HASH (trace_id)" if partitions else ""
    ddl = [
        f"""CREATE TABLE IF NOT EXISTS {t["state"]} (
            trace_id text COLLATE "C" PRIMARY KEY,
            circuit text NOT NULL,
            schematic_version text NOT NULL,
            resumed_from_step integer,
            epoch integer NOT NULL DEFAULT 0,
            completion text CHECK (completion IN ({_COMPLETIONS})),
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            completed_at timestamptz)""",
        f"""CREATE INDEX IF NOT EXISTS {t["state"]}_completed_at_idx
            ON {t["state"]} (completed_at) WHERE completion IS NOT NULL""",
        f"""CREATE INDEX IF NOT EXISTS {t["state"]}_circuit_idx
            ON {t["state"]} (circuit, trace_id)""",
        # generation 0: the live event of a step; n > 0: superseded by the n-th resume
        f"""CREATE TABLE IF NOT EXISTS {t["events"]} (
            trace_id text COLLATE "C" NOT NULL,
            generation integer NOT NULL DEFAULT 0,
            step integer NOT NULL,
            schematic_version text NOT NULL,
            outcome_kind text NOT NULL,
            node_id text,
            timestamp_ms bigint NOT NULL,
            payload_hash text,
            payload json,
            PRIMARY KEY (trace_id, generation, step)){partitioned}""",
        f"""CREATE TABLE IF NOT EXISTS {t["interventions"]} (
            trace_id text COLLATE "C" NOT NULL
                REFERENCES {t["state"]} (trace_id) ON DELETE CASCADE,
            seq integer NOT NULL,
            target_node text NOT NULL,
            timestamp_ms bigint NOT NULL,
            payload_override json,
            PRIMARY KEY (trace_id, seq))""",
        f"""CREATE TABLE IF NOT EXISTS {t["leases"]} (
            trace_id text COLLATE "C" PRIMARY KEY,
            holder text,
            token bigint NOT NULL,
            expires_at timestamptz NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {t["compensations"]} (
            idempotency_key text COLLATE "C" PRIMARY KEY,
            state text NOT NULL CHECK (state IN ('claimed', 'compensated')),
            claimed_at timestamptz NOT NULL,
            compensated_at timestamptz)""",
        f"""CREATE INDEX IF NOT EXISTS {t["compensations"]}_claimed_at_idx
            ON {t["compensations"]} (claimed_at)""",
    ]
    for i in range(partitions or 0):
        ddl.append(
            f"""CREATE TABLE IF NOT EXISTS {t["events"]}_{i} PARTITION OF {t["events"]}
                FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i})"""
        )
    return ddl


def _event_write_times(t: dict[str, str], partitions: int | None) -> list[str]:
    # nullable and without a default: instant on a live table (no rewrite); rows written
    # before it have NULL, and their trace's state row still holds their time
    return [f"ALTER TABLE {t['events']} ADD COLUMN IF NOT EXISTS written_at timestamptz"]


def _bigint_steps(t: dict[str, str], partitions: int | None) -> list[str]:
    # 64-bit steps as the runtime counts them. ALTER COLUMN TYPE rewrites each table (and
    # each partition, with its indexes) under an ACCESS EXCLUSIVE lock: docs/stores/postgres.md
    prefix = t["state"].removesuffix("_state")
    return [
        f"ALTER TABLE {t['events']} ALTER COLUMN step TYPE bigint",
        f"""ALTER TABLE {t["state"]}
            ALTER COLUMN resumed_from_step TYPE bigint,
            ALTER COLUMN attempts TYPE bigint,
            ALTER COLUMN forked_at_step TYPE bigint""",
        # retention deletes finished keys only, by the time their hook finished
        f"""CREATE INDEX IF NOT EXISTS {prefix}_compensated_at_idx
            ON {t["compensations"]} (compensated_at) WHERE state = 'compensated'""",
    ]


def _durable_start(t: dict[str, str], partitions: int | None) -> list[str]:
    # nullable or with a constant default: instant on a live table (no rewrite, no scan);
    # traces stored before it read back with no input, 0 attempts and no fork origin
    return [
        f"""ALTER TABLE {t["state"]}
            ADD COLUMN IF NOT EXISTS input json,
            ADD COLUMN IF NOT EXISTS attempts integer NOT NULL DEFAULT 0,
            ADD COLUMN IF NOT EXISTS forked_from text,
            ADD COLUMN IF NOT EXISTS forked_at_step integer"""
    ]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial tables", _initial),
    Migration(
        2, "events.written_at: an append no longer updates its state row", _event_write_times
    ),
    Migration(3, "state.input, attempts, forked_from: a run's durable start", _durable_start),
    Migration(4, "bigint steps and attempts; an index of finished compensations", _bigint_steps),
)
"""Applied in order; never edit a released one, append a new one."""
LATEST_VERSION = MIGRATIONS[-1].version


def _latest(t: dict[str, str], partitions: int | None) -> list[str]:
    """The tables as the migrations above leave them, created in one go when none exists
    yet: a new partitioned store would otherwise create its events table and rewrite it
    at once (tests/postgres/test_migrations.py holds the two to the same catalog)."""
    prefix = t["state"].removesuffix("_state")
    partitioned = " PARTITION BY HASH (trace_id)" if partitions else ""
    ddl = [
        f"""CREATE TABLE {t["state"]} (
            trace_id text COLLATE "C" PRIMARY KEY,
            circuit text NOT NULL,
            schematic_version text NOT NULL,
            resumed_from_step bigint,
            epoch integer NOT NULL DEFAULT 0,
            completion text CHECK (completion IN ({_COMPLETIONS})),
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            completed_at timestamptz,
            input json,
            attempts bigint NOT NULL DEFAULT 0,
            forked_from text,
            forked_at_step bigint)""",
        f"""CREATE INDEX {t["state"]}_completed_at_idx
            ON {t["state"]} (completed_at) WHERE completion IS NOT NULL""",
        f"CREATE INDEX {t['state']}_circuit_idx ON {t['state']} (circuit, trace_id)",
        f"""CREATE TABLE {t["events"]} (
            trace_id text COLLATE "C" NOT NULL,
            generation integer NOT NULL DEFAULT 0,
            step bigint NOT NULL,
            schematic_version text NOT NULL,
            outcome_kind text NOT NULL,
            node_id text,
            timestamp_ms bigint NOT NULL,
            payload_hash text,
            payload json,
            written_at timestamptz,
            PRIMARY KEY (trace_id, generation, step)){partitioned}""",
        f"""CREATE TABLE {t["interventions"]} (
            trace_id text COLLATE "C" NOT NULL
                REFERENCES {t["state"]} (trace_id) ON DELETE CASCADE,
            seq integer NOT NULL,
            target_node text NOT NULL,
            timestamp_ms bigint NOT NULL,
            payload_override json,
            PRIMARY KEY (trace_id, seq))""",
        f"""CREATE TABLE {t["leases"]} (
            trace_id text COLLATE "C" PRIMARY KEY,
            holder text,
            token bigint NOT NULL,
            expires_at timestamptz NOT NULL)""",
        f"""CREATE TABLE {t["compensations"]} (
            idempotency_key text COLLATE "C" PRIMARY KEY,
            state text NOT NULL CHECK (state IN ('claimed', 'compensated')),
            claimed_at timestamptz NOT NULL,
            compensated_at timestamptz)""",
        f"""CREATE INDEX {t["compensations"]}_claimed_at_idx
            ON {t["compensations"]} (claimed_at)""",
        f"""CREATE INDEX {prefix}_compensated_at_idx
            ON {t["compensations"]} (compensated_at) WHERE state = 'compensated'""",
    ]
    for i in range(partitions or 0):
        ddl.append(
            f"""CREATE TABLE {t["events"]}_{i} PARTITION OF {t["events"]}
                FOR VALUES WITH (MODULUS {partitions}, REMAINDER {i})"""
        )
    return ddl


def validate_partitions(partitions: object) -> int | None:
    if partitions is None:
        return None
    if type(partitions) is not int or not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidInput(f"partitions must be an int from 1 to {MAX_PARTITIONS} or None")
    return partitions


def advisory_key(prefix: str) -> int:
    """A signed 64-bit lock key for this prefix's schema."""
    digest = hashlib.sha256(f"ranvier-schema:{prefix}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_COUNT_PARTITIONS = """
SELECT (SELECT count(*) FROM pg_partitioned_table WHERE partrelid = to_regclass($1)) AS parted,
       (SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass($1)) AS parts
"""


async def ensure_schema(conn: asyncpg.Connection, prefix: str, partitions: int | None) -> bool:
    """Apply the missing migrations (on an empty prefix: create the latest tables at once
    and record every migration), then check every table. True if a migration changed
    tables that existed (prepared statements planned before may be stale)."""
    partitions = validate_partitions(partitions)
    t = table_names(prefix)
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(prefix))
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {t["schema_version"]} (
                version integer PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        current = await conn.fetchval(
            f"SELECT coalesce(max(version), 0) FROM {t['schema_version']}"
        )
        if current > LATEST_VERSION:
            raise SchemaMismatch(
                f"tables {prefix}_* are at schema version {current}; this ranvier knows up "
                f"to {LATEST_VERSION}: upgrade ranvier"
            )
        pending = [m for m in MIGRATIONS if m.version > current]
        fresh = current == 0 and not await conn.fetchval(_ANY_TABLE, _data_tables(t))
        try:
            async with conn.transaction():  # a savepoint: the tables can be checked after
                if fresh:
                    for statement in _latest(t, partitions):
                        await conn.execute(statement)
                for migration in pending:
                    await _apply(conn, t, migration, partitions, record_only=fresh)
        except asyncpg.PostgresError:  # a table in the way (made by hand?): say which
            await check_tables(conn, t)
            raise
        await check_tables(conn, t)
        await _check_partitions(conn, t["events"], partitions)
    return bool(pending) and not fresh


_ANY_TABLE = "SELECT bool_or(to_regclass(name) IS NOT NULL) FROM unnest($1::text[]) AS name"


def _data_tables(t: dict[str, str]) -> list[str]:
    return [name for role, name in t.items() if role != "schema_version"]


async def _apply(
    conn: asyncpg.Connection,
    t: dict[str, str],
    migration: Migration,
    partitions: int | None,
    *,
    record_only: bool,
) -> None:
    if not record_only:
        for statement in migration.statements(t, partitions):
            await conn.execute(statement)
    await conn.execute(
        f"INSERT INTO {t['schema_version']} (version, description) VALUES ($1, $2)",
        migration.version,
        migration.description,
    )


async def _check_partitions(conn: asyncpg.Connection, events: str, wanted: int | None) -> None:
    if wanted is None:
        return
    row = await conn.fetchrow(_COUNT_PARTITIONS, events)
    assert row is not None  # an aggregate query returns one row
    if not row["parted"] or row["parts"] != wanted:
        actual = f"{row['parts']} partitions" if row["parted"] else "not partitioned"
        raise InvalidInput(
            f"{events} already exists ({actual}); partitions={wanted} applies only when the "
            "table is created: repartition by hand or drop partitions="
        )


async def drop_schema(conn: asyncpg.Connection, prefix: str) -> None:
    """Drop every table of this prefix (tests and benchmarks clean up with it)."""
    t = table_names(prefix)
    order = ("interventions", "events", "state", "leases", "compensations", "schema_version")
    async with conn.transaction():
        for name in order:
            await conn.execute(f"DROP TABLE IF EXISTS {t[name]} CASCADE")
