"""The SQL of docs/stores/sqlite.md, run exactly as the page shows it (issue 14, item 11).

A purge by hand must leave nothing of the purged traces behind: events (superseded ones
included), interventions, leases, state.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest

from ranvier import CompletionState, Intervention
from ranvier.model import now_ms
from ranvier.stores.sqlite import SqlitePersistenceStore, sql
from tests.contract.helpers import envelope
from tests.sqlite.helpers import ROOT

DOC = ROOT / "docs" / "stores" / "sqlite.md"
DAY_MS = 24 * 3600 * 1000
TABLES = (sql.EVENTS, sql.INTERVENTIONS, sql.LEASES, sql.STATE)


def sql_blocks() -> list[str]:
    return re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.DOTALL)


def retention_sql() -> str:
    (script,) = [block for block in sql_blocks() if "DELETE" in block]
    return script


async def _rich_trace(store: SqlitePersistenceStore, trace_id: str, *, done: bool) -> None:
    """Events, a rewind (superseded events), an intervention and a lease."""
    lease = await store.acquire_lease(trace_id, "w1", 60_000)
    assert lease is not None
    for step in range(3):
        await store.append(envelope(trace_id, step, {"order": {"id": trace_id}}), fence=lease.token)
    await store.save_intervention(trace_id, Intervention(target_node="node1", payload_override=1))
    await store.resume(trace_id, 0, fence=lease.token)
    await store.append(envelope(trace_id, 1, {"again": 1}), fence=lease.token)
    if done:
        await store.complete(trace_id, CompletionState.SUCCESS, fence=lease.token)


def _rows_of(conn: sqlite3.Connection, trace_id: str) -> dict[str, int]:
    return {
        table: conn.execute(
            f"SELECT count(*) FROM {table} WHERE trace_id = ?", (trace_id,)
        ).fetchone()[0]
        for table in TABLES
    }


async def _store_with_old_recent_and_open(path: Path) -> None:
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        for trace_id, done in (("old", True), ("recent", True), ("open", False)):
            await _rich_trace(store, trace_id, done=done)
    with closing(sqlite3.connect(path)) as conn, conn:  # "old" completed 40 days ago
        conn.execute(
            f"UPDATE {sql.STATE} SET completed_at_ms = ? WHERE trace_id = 'old'",
            (now_ms() - 40 * DAY_MS,),
        )


def _run_with_python(path: Path, script: str) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        conn.executescript(script)


def _run_with_the_sqlite3_shell(path: Path, script: str) -> None:
    shell = shutil.which("sqlite3")
    if shell is None:
        if os.environ.get("CI"):
            pytest.fail("the sqlite3 shell is missing: .ci/run installs it (apt sqlite3)")
        pytest.skip("the sqlite3 shell is not installed (apt-get install sqlite3)")
    done = subprocess.run(
        [shell, str(path)], input=script, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and not done.stderr, done.stderr


@pytest.mark.parametrize("run", [_run_with_python, _run_with_the_sqlite3_shell])
async def test_the_docs_retention_sql_leaves_nothing_of_a_purged_trace(
    tmp_path: Path, run: Callable[[Path, str], None]
) -> None:
    path = tmp_path / "retention.db"
    await _store_with_old_recent_and_open(path)
    with closing(sqlite3.connect(path)) as conn:
        kept = {t: _rows_of(conn, t) for t in ("recent", "open")}
        old = _rows_of(conn, "old")
    assert old == {sql.EVENTS: 4, sql.INTERVENTIONS: 1, sql.LEASES: 1, sql.STATE: 1}
    run(path, retention_sql())
    with closing(sqlite3.connect(path)) as conn:
        assert _rows_of(conn, "old") == dict.fromkeys(TABLES, 0)
        assert {t: _rows_of(conn, t) for t in ("recent", "open")} == kept
        temp = conn.execute("SELECT count(*) FROM sqlite_temp_schema").fetchone()[0]
    assert temp == 0
    async with SqlitePersistenceStore(path) as store:  # the store reads what is left
        assert await store.load("old") is None
        recent = await store.load("recent")
        assert recent is not None and len(recent.superseded_events) == 2


async def test_every_sql_snippet_of_the_page_runs(tmp_path: Path) -> None:
    path = tmp_path / "snippets.db"
    await _store_with_old_recent_and_open(path)
    blocks = sql_blocks()
    assert len(blocks) >= 2
    for script in blocks:
        _run_with_python(path, script)
    with closing(sqlite3.connect(path)) as conn:
        ids = conn.execute(
            f"SELECT DISTINCT json_extract(payload, '$.order.id') FROM {sql.EVENTS}"
            " WHERE payload LIKE '%order%' ORDER BY 1"
        ).fetchall()
    assert ids == [("open",), ("recent",)]
