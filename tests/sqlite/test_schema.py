"""The SQLite schema: runbook names, versions, migrations, concurrent ensure_schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from ranvier import (
    CheckpointConflict,
    CompletionState,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    SchemaMismatch,
    TraceStart,
    open_store,
)
from ranvier.model import now_ms
from ranvier.stores.sqlite import SqlitePersistenceStore
from ranvier.stores.sqlite.schema import (
    CODE_VERSION,
    MIGRATIONS,
    TRACES_VIEW_V1,
    VERSION_TABLE,
)
from tests.sqlite.helpers import spawn

DAY_MS = 24 * 3600 * 1000


def columns(path: Path, table: str) -> set[str]:
    with closing(sqlite3.connect(path)) as conn, conn:
        return {row[1] for row in conn.execute(f"PRAGMA table_xinfo({table})")}


async def test_tables_and_columns_are_the_runbooks(tmp_path: Path) -> None:
    path = tmp_path / "names.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
    assert {"trace_id", "circuit", "schematic_version", "completion", "completed_at"} <= columns(
        path, "ranvier_persistence_state"
    )
    assert {"trace_id", "step", "outcome_kind", "payload"} <= columns(
        path, "ranvier_persistence_events"
    )
    assert {"trace_id", "target_node"} <= columns(path, "ranvier_persistence_interventions")
    assert {"key", "claimed_at_ms"} <= columns(path, "ranvier_persistence_compensation_idempotency")
    assert {"trace_id", "holder", "token", "expires_at_ms"} <= columns(
        path, "ranvier_persistence_leases"
    )


def _completed_trace(trace_id: str, completed_at_ms: int) -> PersistedTrace:
    event = PersistenceEnvelope(
        trace_id=trace_id,
        circuit="orders",
        schematic_version="1",
        step=0,
        outcome_kind=OutcomeKind.NEXT,
        node_id="n0",
        timestamp_ms=completed_at_ms - 10,
        payload={"a": 1},
    )
    return PersistedTrace(
        trace_id=trace_id,
        circuit="orders",
        schematic_version="1",
        events=(event,),
        completion=CompletionState.SUCCESS,
        created_at_ms=completed_at_ms - 10,
        updated_at_ms=completed_at_ms,
        completed_at_ms=completed_at_ms,
    )


async def test_the_runbooks_purge_sql_works_with_sqlite_dates(tmp_path: Path) -> None:
    path = tmp_path / "runbook.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        await store.import_trace(_completed_trace("old", now_ms() - 40 * DAY_MS))
        await store.import_trace(_completed_trace("recent", now_ms() - DAY_MS))
    # the runbook's two statements, with SQLite's date syntax
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "DELETE FROM ranvier_persistence_events WHERE trace_id IN ("
            " SELECT trace_id FROM ranvier_persistence_state WHERE completion IS NOT NULL"
            " AND completed_at < datetime('now', '-30 days'))"
        )
        conn.execute(
            "DELETE FROM ranvier_persistence_state WHERE completion IS NOT NULL"
            " AND completed_at < datetime('now', '-30 days')"
        )
        count = conn.execute(
            "SELECT COUNT(*) FROM ranvier_persistence_state WHERE completion IS NOT NULL"
        ).fetchone()[0]
        events = conn.execute("SELECT DISTINCT trace_id FROM ranvier_persistence_events")
        assert [row[0] for row in events] == ["recent"]
    assert count == 1


async def test_completed_at_is_utc_datetime_text(tmp_path: Path) -> None:
    path = tmp_path / "dates.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        await store.import_trace(_completed_trace("t", 1_700_000_000_123))
    with closing(sqlite3.connect(path)) as conn, conn:
        row = conn.execute("SELECT completed_at, completed_at_ms FROM ranvier_persistence_state")
        assert row.fetchone() == ("2023-11-14 22:13:20.123", 1_700_000_000_123)


async def test_wal_mode_is_on(tmp_path: Path) -> None:
    path = tmp_path / "wal.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        with closing(sqlite3.connect(path)) as conn, conn:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_schema_version_is_recorded_and_ensure_schema_is_idempotent(
    tmp_path: Path,
) -> None:
    path = tmp_path / "version.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        await store.ensure_schema()
    with closing(sqlite3.connect(path)) as conn, conn:
        versions = [row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
    assert versions == [number for number, _, _ in MIGRATIONS]
    assert versions[-1] == CODE_VERSION


async def test_a_newer_stored_schema_is_a_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            f"INSERT INTO {VERSION_TABLE} (version, description) VALUES (?, 'from the future')",
            (CODE_VERSION + 1,),
        )
    with pytest.raises(SchemaMismatch, match="upgrade ranvier"):
        await open_store(f"sqlite:///{path}")


def test_ensure_schema_from_four_processes_at_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"
    children = [spawn("ensure-schema", str(path), f"p{i}") for i in range(4)]
    outputs = [child.communicate(timeout=60) for child in children]
    for child, (out, err) in zip(children, outputs, strict=True):
        assert child.returncode == 0, err
        assert out.startswith("ok "), err
    with closing(sqlite3.connect(path)) as conn, conn:
        versions = [row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
        traces = conn.execute("SELECT count(*) FROM ranvier_persistence_state").fetchone()[0]
    assert versions == [number for number, _, _ in MIGRATIONS]
    assert traces == 4


_V3_STATE_COLUMNS = ("input", "attempts", "forked_from", "forked_at_step")


def _downgrade_to_v3(path: Path) -> None:
    """Put back the indexes version 4 replaced."""
    v1_indexes = [s for s in MIGRATIONS[0][2] if s.startswith("CREATE INDEX")]
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP INDEX ranvier_persistence_state_completed")
        conn.execute("DROP INDEX ranvier_persistence_compensation_done")
        for statement in v1_indexes:
            if "_completed " in statement or "_claimed " in statement:
                conn.execute(statement)
        conn.execute(f"DELETE FROM {VERSION_TABLE} WHERE version > 3")


def _downgrade_to_v2(path: Path) -> None:
    """Drop what version 3 added: the state row's start columns; the view of version 2."""
    _downgrade_to_v3(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP VIEW ranvier_persistence_traces")
        for column in _V3_STATE_COLUMNS:
            conn.execute(f"ALTER TABLE ranvier_persistence_state DROP COLUMN {column}")
        conn.execute(TRACES_VIEW_V1)
        conn.execute(f"DELETE FROM {VERSION_TABLE} WHERE version > 2")


def _schema_of(conn: sqlite3.Connection) -> list[tuple[str, ...]]:
    return conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_schema"
        f" WHERE name NOT LIKE 'sqlite_%' AND name != '{VERSION_TABLE}' ORDER BY name"
    ).fetchall()


def _schema_of_version(version: int) -> list[tuple[str, ...]]:
    """The tables, indexes and view a file created by release `version` holds."""
    with closing(sqlite3.connect(":memory:")) as conn:
        for _, _, statements in MIGRATIONS[:version]:
            for statement in statements:
                conn.execute(statement)
        return _schema_of(conn)


def _downgrade_to_v1(path: Path) -> None:
    """Rebuild the events table as version 1 laid it out (clustered by its key)."""
    _downgrade_to_v2(path)
    v1_events = next(s for s in MIGRATIONS[0][2] if "TABLE ranvier_persistence_events" in s)
    columns = (
        "trace_id, superseded, step, outcome_kind, node_id, timestamp_ms, payload_hash, "
        "payload, schematic_version, recorded_at_ms"
    )
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("DROP VIEW ranvier_persistence_traces")
        conn.execute("ALTER TABLE ranvier_persistence_events RENAME TO events_v2")
        conn.execute(v1_events)
        conn.execute(
            f"INSERT INTO ranvier_persistence_events ({columns}) SELECT {columns} FROM events_v2"
        )
        conn.execute("DROP TABLE events_v2")
        conn.execute(TRACES_VIEW_V1)
        conn.execute(f"DELETE FROM {VERSION_TABLE} WHERE version > 1")


def _envelope(step: int, payload: dict[str, int], version: str = "1") -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id="t",
        circuit="orders",
        schematic_version=version,
        step=step,
        outcome_kind=OutcomeKind.NEXT,
        node_id=f"n{step}",
        payload=payload,
    )


async def test_a_version_1_file_migrates_to_events_by_rowid_and_keeps_everything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v1.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        for step in range(4):
            await store.append(_envelope(step, {"a": step}, version="2" if step == 3 else "1"))
        await store.resume("t", 1)  # steps 2 and 3 are superseded, kept for audit
        await store.append(_envelope(2, {"b": 2}))
        before = await store.load("t")
    _downgrade_to_v1(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        assert conn.execute("SELECT count(*) FROM ranvier_persistence_events").fetchone()[0] == 5
        layout = conn.execute(
            "SELECT sql FROM sqlite_schema WHERE name = 'ranvier_persistence_events'"
        ).fetchone()[0]
        assert "WITHOUT ROWID" in layout

    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        assert await store.load("t") == before
        await store.append(_envelope(2, {"b": 2}))  # an idempotent re-append
        with pytest.raises(CheckpointConflict):
            await store.append(_envelope(2, {"b": 3}))  # the unique key still holds
        await store.append(_envelope(3, {"c": 3}))
        after = await store.load("t")
    assert before is not None and after is not None
    assert [e.step for e in after.events] == [0, 1, 2, 3]
    assert after.superseded_events == before.superseded_events
    with closing(sqlite3.connect(path)) as conn, conn:
        versions = [row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
        indexes = {
            row[0]
            for row in conn.execute(
                "SELECT name FROM sqlite_schema WHERE tbl_name = 'ranvier_persistence_events'"
                " AND type = 'index'"
            )
        }
        listed = conn.execute(
            "SELECT last_step, event_count FROM ranvier_persistence_traces"
        ).fetchone()
    assert versions == [number for number, _, _ in MIGRATIONS]
    assert "ranvier_persistence_events_key" in indexes
    assert listed == (3, 4)


async def test_a_version_2_file_migrates_to_durable_starts_and_keeps_everything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v2.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        for step in range(3):
            await store.append(_envelope(step, {"a": step}))
        await store.resume("t", 0)  # steps 1 and 2 are superseded, kept for audit
        await store.append(_envelope(1, {"b": 1}))
        await store.save_intervention("t", Intervention(target_node="n1", timestamp_ms=7))
        await store.import_trace(_completed_trace("done", now_ms() - DAY_MS))
        assert await store.acquire_lease("leased", "w1", 60_000) is not None  # no trace
        before = await store.load("t")
        done = await store.load("done")
    assert before is not None and before.attempts == 0
    _downgrade_to_v2(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        assert _schema_of(conn) == _schema_of_version(2)  # as release 2 made it

    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        assert await store.load("t") == before
        assert await store.load("done") == done
        assert (await store.list_traces(min_attempts=1)).items == ()
        # what version 3 is for works on the migrated file: attempts, starts, the fast path
        lease = await store.acquire_lease("t", "w1", 60_000)
        assert lease is not None
        completed = await store.acquire_lease("done", "w1", 60_000)
        assert completed is not None
        start = TraceStart(circuit="orders", schematic_version="1", input={"in": 1})
        started = await store.acquire_lease("new", "w1", 60_000, start=start)
        assert started is not None
        await store.append(_envelope(2, {"c": 2}), fence=lease.token)
        new = replace(_envelope(0, {"d": 0}), trace_id="new")
        await store.append(new, fence=started.token)
        after = await store.load("t")
        listed = (await store.list_traces(min_attempts=1, circuit="orders")).items
        assert (await store.list_traces(min_attempts=2)).items == ()
        fresh = await store.load("new")
    assert after is not None and after.attempts == 1 and after.input is None
    assert [e.step for e in after.events] == [0, 1, 2]
    assert after.superseded_events == before.superseded_events
    assert after.interventions == before.interventions
    assert fresh is not None and fresh.input == {"in": 1} and fresh.attempts == 1
    assert [e.payload for e in fresh.events] == [{"d": 0}]
    assert [(s.trace_id, s.attempts) for s in listed] == [("new", 1), ("t", 1)]
    with closing(sqlite3.connect(path)) as conn, conn:
        versions = [row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
        attempts = dict(conn.execute("SELECT trace_id, attempts FROM ranvier_persistence_traces"))
        stored_input = conn.execute(
            "SELECT input FROM ranvier_persistence_state WHERE trace_id = 'new'"
        ).fetchone()[0]
        assert _schema_of(conn) == _schema_of_version(CODE_VERSION)  # as a new file's
    assert versions == [number for number, _, _ in MIGRATIONS]
    assert attempts == {"t": 1, "done": 0, "new": 1}
    assert stored_input == '{"in":1}'  # canonical JSON text, as payloads are stored
    assert _V3_STATE_COLUMNS[0] in columns(path, "ranvier_persistence_state")


async def test_a_version_3_file_migrates_to_retention_indexes_and_keeps_every_key(
    tmp_path: Path,
) -> None:
    path = tmp_path / "v3.db"
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        await store.import_trace(_completed_trace("old", now_ms() - 40 * DAY_MS))
        await store.import_trace(_completed_trace("recent", now_ms() - DAY_MS))
        await store.compensations.claim("t:orders:unfinished")
        await store.compensations.mark_compensated("t:orders:done")
        records = await store.compensations.list_records()
    _downgrade_to_v3(path)
    with closing(sqlite3.connect(path)) as conn, conn:
        assert _schema_of(conn) == _schema_of_version(3)  # as release 3 made it

    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        assert await store.compensations.list_records() == records
        cutoff = now_ms() - 30 * DAY_MS
        assert await store.count_completed_before(cutoff) == 1
        assert await store.purge_completed(cutoff) == 1
        assert await store.load("old") is None and await store.load("recent") is not None
        later = now_ms() + DAY_MS
        assert await store.compensations.count_older_than_ms(later) == 1
        assert await store.compensations.purge_older_than_ms(later) == 1
        assert [r.key for r in await store.compensations.list_records()] == ["t:orders:unfinished"]
    with closing(sqlite3.connect(path)) as conn, conn:
        versions = [row[0] for row in conn.execute(f"SELECT version FROM {VERSION_TABLE}")]
        assert _schema_of(conn) == _schema_of_version(CODE_VERSION)  # as a new file's
    assert versions == [1, 2, 3, 4]
