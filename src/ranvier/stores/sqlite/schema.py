"""The SQLite schema: tables, indexes and the ordered list of migrations.

Table and column names follow the runbook's PostgreSQL tables so operators' SQL carries
over: `completion` and `completed_at` live in `ranvier_persistence_state`, and the
`*_at` text columns hold SQLite datetime text ('YYYY-MM-DD HH:MM:SS.SSS', UTC), so
`completed_at < datetime('now', '-30 days')` works as written. Exact logic uses the
integer `*_ms` columns (unix milliseconds); the text columns are generated from them.
"""

from __future__ import annotations

import sqlite3

from ranvier.errors import SchemaMismatch
from ranvier.stores.sqlite import sql


def _datetime_of(ms_column: str) -> str:
    return (
        f"TEXT GENERATED ALWAYS AS "
        f"(strftime('%Y-%m-%d %H:%M:%f', {ms_column} / 1000.0, 'unixepoch')) VIRTUAL"
    )


VERSION_TABLE = "ranvier_persistence_schema_version"
OBJECTS = (
    sql.STATE,
    sql.EVENTS,
    sql.INTERVENTIONS,
    sql.LEASES,
    sql.COMPENSATIONS,
    VERSION_TABLE,
    sql.TRACES_VIEW,
)
"""The tables (and the view) a store uses, as `describe` names them."""


def _traces_view(state_columns: str) -> str:
    """The traces view with `state_columns` (each followed by a comma) of the state row
    after the first ones; every version's view reads the tables of that version."""
    return f"""
    CREATE VIEW ranvier_persistence_traces AS
    SELECT s.trace_id, s.circuit, s.schematic_version, s.completion, s.resumed_from_step,
           s.created_at_ms, s.completed_at_ms,{state_columns}
           max(s.updated_at_ms, coalesce(last.recorded_at_ms, 0)) AS updated_at_ms,
           last.step AS last_step,
           (SELECT count(*) FROM ranvier_persistence_events c
             WHERE c.trace_id = s.trace_id AND c.superseded = 0) AS event_count,
           l.holder AS lease_holder,
           coalesce(l.expires_at_ms, 0) AS lease_expires_at_ms,
           s.completed_at, s.created_at,
           strftime('%Y-%m-%d %H:%M:%f',
                    max(s.updated_at_ms, coalesce(last.recorded_at_ms, 0)) / 1000.0,
                    'unixepoch') AS updated_at
      FROM ranvier_persistence_state s
      LEFT JOIN ranvier_persistence_events last
        ON last.trace_id = s.trace_id AND last.superseded = 0
       AND last.step = (SELECT max(m.step) FROM ranvier_persistence_events m
                         WHERE m.trace_id = s.trace_id AND m.superseded = 0)
      LEFT JOIN ranvier_persistence_leases l ON l.trace_id = s.trace_id
    """


# Appends write only their event row; a trace's last change is therefore the later of
# its state row's and its newest live event's, derived in the view.
TRACES_VIEW_V1 = _traces_view("")
"""The view of schema versions 1 and 2."""
TRACES_VIEW = _traces_view("\n           s.attempts, s.forked_from, s.forked_at_step,")
"""The view of the current schema version (3: a trace's attempts and fork origin)."""


_EVENT_COLUMN_DEFS = """\
        trace_id          TEXT NOT NULL,
        superseded        INTEGER NOT NULL DEFAULT 0,
        step              INTEGER NOT NULL,
        outcome_kind      TEXT NOT NULL,
        node_id           TEXT,
        timestamp_ms      INTEGER NOT NULL,
        payload_hash      TEXT,
        payload           TEXT,
        schematic_version TEXT,
        recorded_at_ms    INTEGER NOT NULL"""
"""The events table's columns, in every version of its layout."""

_V1 = [
    f"""
    CREATE TABLE ranvier_persistence_state (
        trace_id          TEXT NOT NULL PRIMARY KEY,
        circuit           TEXT NOT NULL,
        schematic_version TEXT NOT NULL,
        completion        TEXT CHECK (completion IN
                              ('success', 'fault', 'cancelled', 'compensated')),
        completed_at_ms   INTEGER,
        resumed_from_step INTEGER,
        rewinds           INTEGER NOT NULL DEFAULT 0,
        created_at_ms     INTEGER NOT NULL,
        updated_at_ms     INTEGER NOT NULL,
        completed_at      {_datetime_of("completed_at_ms")},
        created_at        {_datetime_of("created_at_ms")},
        updated_at        {_datetime_of("updated_at_ms")}
    ) WITHOUT ROWID
    """,
    # superseded = 0: the live event of its step; n > 0: replaced by the trace's n-th
    # rewind (kept for audit). The key keeps live events unique per step.
    # schematic_version is NULL when it equals the trace's (the usual case).
    f"""
    CREATE TABLE ranvier_persistence_events (
{_EVENT_COLUMN_DEFS},
        PRIMARY KEY (trace_id, superseded, step)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE ranvier_persistence_interventions (
        trace_id         TEXT NOT NULL,
        seq              INTEGER NOT NULL,
        target_node      TEXT NOT NULL,
        payload_override TEXT,
        timestamp_ms     INTEGER NOT NULL,
        recorded_at_ms   INTEGER NOT NULL,
        PRIMARY KEY (trace_id, seq)
    ) WITHOUT ROWID
    """,
    f"""
    CREATE TABLE ranvier_persistence_compensation_idempotency (
        key               TEXT NOT NULL PRIMARY KEY,
        state             TEXT NOT NULL CHECK (state IN ('claimed', 'compensated')),
        claimed_at_ms     INTEGER NOT NULL,
        compensated_at_ms INTEGER,
        claimed_at        {_datetime_of("claimed_at_ms")},
        compensated_at    {_datetime_of("compensated_at_ms")}
    ) WITHOUT ROWID
    """,
    # A released lease keeps its row (holder NULL) so fencing tokens only grow.
    """
    CREATE TABLE ranvier_persistence_leases (
        trace_id      TEXT NOT NULL PRIMARY KEY,
        holder        TEXT,
        token         INTEGER NOT NULL,
        expires_at_ms INTEGER NOT NULL
    ) WITHOUT ROWID
    """,
    "CREATE INDEX ranvier_persistence_state_circuit ON ranvier_persistence_state "
    "(circuit, trace_id)",
    "CREATE INDEX ranvier_persistence_state_completion ON ranvier_persistence_state "
    "(completion, trace_id)",
    "CREATE INDEX ranvier_persistence_state_completed ON ranvier_persistence_state "
    "(completed_at_ms) WHERE completion IS NOT NULL",
    "CREATE INDEX ranvier_persistence_compensation_claimed ON "
    "ranvier_persistence_compensation_idempotency (claimed_at_ms)",
    "CREATE INDEX ranvier_persistence_compensation_unfinished ON "
    "ranvier_persistence_compensation_idempotency (claimed_at_ms, key) WHERE state = 'claimed'",
    TRACES_VIEW_V1,
]

_EVENT_COLUMNS = (
    "trace_id, superseded, step, outcome_kind, node_id, timestamp_ms, payload_hash, "
    "payload, schematic_version, recorded_at_ms"
)

# Events move from a table clustered by (trace_id, superseded, step) to a rowid table
# with that key as a unique index. Clustered, a batch of appends to 64 traces wrote 64
# leaf pages of event rows (and split one every ~15 appends per trace); by rowid, the
# rows land on the table's last page or two and only the small index entries spread
# out: 64 appends per commit went from 20.7 to 15.8 us each in bare sqlite3
# (docs/decisions.md, "SQLite events by rowid"). The view reads the table: rebuilt.
_V2 = [
    "DROP VIEW ranvier_persistence_traces",
    f"""
    CREATE TABLE ranvier_persistence_events_by_rowid (
        id                INTEGER PRIMARY KEY,
{_EVENT_COLUMN_DEFS}
    )
    """,
    f"INSERT INTO ranvier_persistence_events_by_rowid ({_EVENT_COLUMNS}) "
    f"SELECT {_EVENT_COLUMNS} FROM ranvier_persistence_events ORDER BY recorded_at_ms",
    "DROP TABLE ranvier_persistence_events",
    "ALTER TABLE ranvier_persistence_events_by_rowid RENAME TO ranvier_persistence_events",
    "CREATE UNIQUE INDEX ranvier_persistence_events_key ON ranvier_persistence_events "
    "(trace_id, superseded, step)",
    TRACES_VIEW_V1,
]

# A durable start: the trace's state row is created with its lease, before any event,
# and holds what the run started with (`input`, canonical JSON), how many runs took its
# lease while it was unfinished (`attempts`) and, for a fork, its source trace and step.
# Columns added at the end of the row: existing rows read the defaults, nothing is
# rewritten. No index on attempts: a listing pages in trace_id order, and SQLite keeps
# scanning in that order (the filter is one comparison per state row, before any join)
# rather than sort what an index would find; it would cost a write per acquisition.
# The view gains the new columns.
_V3 = [
    "DROP VIEW ranvier_persistence_traces",
    "ALTER TABLE ranvier_persistence_state ADD COLUMN input TEXT",
    "ALTER TABLE ranvier_persistence_state ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0",
    "ALTER TABLE ranvier_persistence_state ADD COLUMN forked_from TEXT",
    "ALTER TABLE ranvier_persistence_state ADD COLUMN forked_at_step INTEGER",
    TRACES_VIEW,
]

# Counts in the store: what retention counts and purges is read from covering indexes,
# partial on `<time> IS NOT NULL`, which SQLite knows `<time> < ?` implies (under the old
# `completion IS NOT NULL`, each entry looked its row up to check that). The times are
# set exactly when the trace is completed, the key compensated (the rules hold both
# together). The ledger's purge takes only compensated keys; the index on claimed_at_ms
# served the old purge (which took unfinished claims too) and nothing else.
_V4 = [
    "DROP INDEX ranvier_persistence_state_completed",
    "CREATE INDEX ranvier_persistence_state_completed ON ranvier_persistence_state "
    "(completed_at_ms) WHERE completed_at_ms IS NOT NULL",
    "DROP INDEX ranvier_persistence_compensation_claimed",
    "CREATE INDEX ranvier_persistence_compensation_done ON "
    "ranvier_persistence_compensation_idempotency (compensated_at_ms) "
    "WHERE compensated_at_ms IS NOT NULL",
]

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (1, "state, events, interventions, compensation idempotency, leases", _V1),
    (2, "events by rowid, unique (trace_id, superseded, step)", _V2),
    (3, "durable start: state input, attempts, forked_from, forked_at_step", _V3),
    (4, "covering indexes for retention counts; ledger purge by compensated_at_ms", _V4),
]
"""Ordered (version, description, statements); a release appends, never edits."""

CODE_VERSION = MIGRATIONS[-1][0]

_CREATE_VERSION_TABLE = f"""
    CREATE TABLE IF NOT EXISTS {VERSION_TABLE} (
        version     INTEGER NOT NULL PRIMARY KEY,
        description TEXT NOT NULL,
        applied_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%d %H:%M:%f', 'now'))
    )
"""
_STORED_VERSION = f"SELECT coalesce(max(version), 0) FROM {VERSION_TABLE}"
_RECORD_VERSION = f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (?, ?)"


def stored_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the file (0: none yet)."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = ?", (VERSION_TABLE,)
    ).fetchone()
    return 0 if exists is None else int(conn.execute(_STORED_VERSION).fetchone()[0])


def check_version(path: str, version: int) -> None:
    if version > CODE_VERSION:
        raise SchemaMismatch(
            f"{path} has schema version {version}, newer than the {CODE_VERSION} this "
            "ranvier knows; upgrade ranvier"
        )


def migrate(conn: sqlite3.Connection, path: str) -> int:
    """Apply the missing migrations inside the caller's write transaction.

    The caller holds BEGIN IMMEDIATE, so concurrent processes run this one at a time and
    each later one finds the work done.
    """
    conn.execute(_CREATE_VERSION_TABLE)
    version = int(conn.execute(_STORED_VERSION).fetchone()[0])
    check_version(path, version)
    for number, description, statements in MIGRATIONS:
        if number > version:
            for statement in statements:
                conn.execute(statement)
            conn.execute(_RECORD_VERSION, (number, description))
    return CODE_VERSION
