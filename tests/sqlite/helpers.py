from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from ranvier.stores.sqlite import SqlitePersistenceStore, sql

ROOT = Path(__file__).resolve().parents[2]


def spawn(*args: str) -> subprocess.Popen[str]:
    """Start `python -m tests.sqlite.workers ARGS` from the repository root."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.sqlite.workers", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def trace_writes(store: SqlitePersistenceStore) -> list[str]:
    """Every statement the writer connection runs from now on (first word, or APPEND_FAST).

    Yields one loop turn first: a write commits at once only within EAGER_SLICE_S of one.
    """
    await asyncio.sleep(0)
    seen: list[str] = []
    fast = " ".join(sql.APPEND_FAST.split()).split("VALUES")[0]

    def record(statement: str) -> None:  # statements come with their values filled in
        flat = " ".join(statement.split())
        seen.append("APPEND_FAST" if flat.startswith(fast) else flat.split()[0].upper())

    conn = store._db._writer
    assert conn is not None
    conn.set_trace_callback(record)
    return seen
