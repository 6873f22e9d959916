"""The side-effect ledger: a separate SQLite database every worker process writes to.

Rows get increasing ids across processes, so their order is the order things happened.
"""

from __future__ import annotations

import os
import sqlite3
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    trace TEXT NOT NULL,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    pid INTEGER NOT NULL
)
"""


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # a killed process loses nothing committed
    conn.execute(SCHEMA)
    return conn


def record(conn: sqlite3.Connection, trace: str, key: str, kind: str) -> int:
    """Insert one effect; returns its id (committed when this returns)."""
    cursor = conn.execute(
        "INSERT INTO effects (trace, key, kind, pid) VALUES (?, ?, ?, ?)",
        (trace, key, kind, os.getpid()),
    )
    return int(cursor.lastrowid or 0)


def has(conn: sqlite3.Connection, key: str, kind: str) -> bool:
    row = conn.execute("SELECT 1 FROM effects WHERE key = ? AND kind = ?", (key, kind)).fetchone()
    return row is not None


def done_traces(path: Path) -> set[str]:
    conn = connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT trace FROM effects WHERE kind = 'done'")}
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Execution:
    id: int
    pid: int


def executions(path: Path, kind: str) -> dict[str, list[Execution]]:
    """key -> its executions of `kind`, in the order they happened."""
    conn = connect(path)
    try:
        found: dict[str, list[Execution]] = defaultdict(list)
        rows = conn.execute("SELECT id, key, pid FROM effects WHERE kind = ? ORDER BY id", (kind,))
        for row_id, key, pid in rows:
            found[key].append(Execution(row_id, pid))
        return found
    finally:
        conn.close()
