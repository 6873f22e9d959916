"""The SQLite schema: runbook names, versions, migrations, concurrent ensure_schema."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ranvier import (
    CompletionState,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    SchemaMismatch,
    open_store,
)
from ranvier.model import now_ms
from ranvier.stores.sqlite import SqlitePersistenceStore
from ranvier.stores.sqlite_schema import CODE_VERSION, MIGRATIONS, VERSION_TABLE
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
