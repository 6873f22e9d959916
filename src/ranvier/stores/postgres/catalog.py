"""What the database holds, read from its catalog: do a prefix's tables match what this
ranvier writes (checked after every `ensure_schema`), and `describe()`.

A table of the prefix made by hand or by another program (`CREATE TABLE IF NOT EXISTS`
leaves it as it is) would otherwise pass `ensure_schema` and fail every write later.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from ranvier import rules
from ranvier.errors import SchemaMismatch
from ranvier.model import StoreDescription
from ranvier.stores.postgres.sql import Statements

_TEXT, _INT, _BIG = "text", "integer", "bigint"
_TIME, _JSON = "timestamp with time zone", "json"

COLUMNS: dict[str, dict[str, str]] = {
    "state": {
        "trace_id": _TEXT,
        "circuit": _TEXT,
        "schematic_version": _TEXT,
        "resumed_from_step": _BIG,
        "epoch": _INT,
        "completion": _TEXT,
        "created_at": _TIME,
        "updated_at": _TIME,
        "completed_at": _TIME,
        "input": _JSON,
        "attempts": _BIG,
        "forked_from": _TEXT,
        "forked_at_step": _BIG,
    },
    "events": {
        "trace_id": _TEXT,
        "generation": _INT,
        "step": _BIG,
        "schematic_version": _TEXT,
        "outcome_kind": _TEXT,
        "node_id": _TEXT,
        "timestamp_ms": _BIG,
        "payload_hash": _TEXT,
        "payload": _JSON,
        "written_at": _TIME,
    },
    "interventions": {
        "trace_id": _TEXT,
        "seq": _INT,
        "target_node": _TEXT,
        "timestamp_ms": _BIG,
        "payload_override": _JSON,
    },
    "leases": {"trace_id": _TEXT, "holder": _TEXT, "token": _BIG, "expires_at": _TIME},
    "compensations": {
        "idempotency_key": _TEXT,
        "state": _TEXT,
        "claimed_at": _TIME,
        "compensated_at": _TIME,
    },
    "schema_version": {"version": _INT, "description": _TEXT, "applied_at": _TIME},
}
"""Every table's columns and types at the latest schema version (what the migrations make)."""

PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "state": ("trace_id",),
    "events": ("trace_id", "generation", "step"),
    "interventions": ("trace_id", "seq"),
    "leases": ("trace_id",),
    "compensations": ("idempotency_key",),
    "schema_version": ("version",),
}
"""The keys the statements' ON CONFLICT clauses need."""

# the columns of the tables these names resolve to (search_path), as information_schema
# reports them
_COLUMNS = """
SELECT c.table_name::text AS table_name, c.column_name::text AS column_name,
       c.data_type::text AS data_type, c.is_nullable = 'YES' AS nullable,
       c.column_default IS NOT NULL AS has_default
FROM information_schema.columns c
WHERE c.table_name = ANY($1::text[])
  AND to_regclass(quote_ident(c.table_schema) || '.' || quote_ident(c.table_name))
      = to_regclass(quote_ident(c.table_name))
"""

_PRIMARY_KEYS = """
SELECT t.name, array_agg(a.attname::text ORDER BY k.n) AS columns
FROM unnest($1::text[]) AS t(name)
JOIN pg_index i ON i.indrelid = to_regclass(quote_ident(t.name)) AND i.indisprimary
CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
GROUP BY t.name
"""


async def check_tables(conn: asyncpg.Connection, names: dict[str, str]) -> None:
    """`SchemaMismatch` naming each table of the prefix that lacks a column, has another
    type or key, or a NOT NULL column ranvier does not write."""
    tables = list(names.values())
    found: dict[str, dict[str, Any]] = {table: {} for table in tables}
    for row in await conn.fetch(_COLUMNS, tables):
        found[row["table_name"]][row["column_name"]] = row
    keys = {row["name"]: tuple(row["columns"]) for row in await conn.fetch(_PRIMARY_KEYS, tables)}
    problems = [
        f"{names[role]}: {'; '.join(issues)}"
        for role, wanted in COLUMNS.items()
        if (
            issues := _issues(wanted, PRIMARY_KEYS[role], found[names[role]], keys.get(names[role]))
        )
    ]
    if problems:
        raise SchemaMismatch(
            "tables of this prefix do not match what ranvier writes (made by hand or by "
            f"another program?): {' | '.join(problems)}. Fix or drop them, or use another "
            "table_prefix"
        )


def _issues(
    wanted: dict[str, str],
    key: tuple[str, ...],
    columns: dict[str, Any],
    actual_key: tuple[str, ...] | None,
) -> list[str]:
    if not columns:
        return ["the table is missing"]
    issues = []
    missing = [name for name in wanted if name not in columns]
    if missing:
        issues.append(f"missing columns {', '.join(missing)}")
    issues += [
        f"{name} is {columns[name]['data_type']}, not {kind}"
        for name, kind in wanted.items()
        if name in columns and columns[name]["data_type"] != kind
    ]
    issues += [
        f"{name} is NOT NULL without a default (ranvier does not write it)"
        for name, row in columns.items()
        if name not in wanted and not row["nullable"] and not row["has_default"]
    ]
    if actual_key != key:
        issues.append(f"primary key {actual_key or 'none'}, not ({', '.join(key)})")
    return issues


async def describe(
    conn: asyncpg.Connection,
    sql: Statements,
    names: dict[str, str],
    *,
    url: str | None,
    pool: asyncpg.Pool,
    latest: int,
) -> StoreDescription:
    """The store's description, read-only: an absent schema is `schema_version=None`."""
    row = await conn.fetchrow(sql.describe)
    assert row is not None  # a SELECT without FROM returns one row
    version = await conn.fetchval(sql.stored_version) if row["versioned"] else None
    if url is None:  # a store around a pool of the caller's: say where it is connected
        url = f"postgresql://{row['user_name']}@{row['host'] or 'localhost'}:{row['port']}"
        url += f"/{row['database']}"
    return StoreDescription(
        adapter="postgres",
        location=rules.masked_url(url),
        schema_version=version,
        latest_schema_version=latest,
        objects=tuple(names.values()),
        settings={
            "synchronous_commit": row["synchronous_commit"],
            "max_connections": row["max_connections"],
            "pool_min": pool.get_min_size(),
            "pool_max": pool.get_max_size(),
            "server_version": row["server_version"],
            "partitions": row["partitions"] or None,
        },
    )
