"""Connections to a SQLite file: our pragmas, and the one place driver errors are translated."""

from __future__ import annotations

import sqlite3
import time

from ranvier.errors import StoreUnavailable

SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
WAL_SIZE_LIMIT = 64 << 20
"""When the WAL restarts from its start, a longer file is truncated to this (bytes)."""


class translate_errors:  # lower case: used as `with translate_errors(path):`
    """The one place sqlite3 errors become ranvier errors.

    A class rather than a generator: it is entered on every write, and this is cheaper.
    """

    __slots__ = ("path",)

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        if isinstance(exc, sqlite3.Error):
            raise StoreUnavailable(f"SQLite store {self.path} failed: {exc}") from exc


def is_busy(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0)
    return isinstance(exc, sqlite3.OperationalError) and code & 0xFF == sqlite3.SQLITE_BUSY


def connect(path: str, *, synchronous: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """A connection in WAL mode with our pragmas (the bench's floor uses this too)."""
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=256,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = _switch_to_wal(conn, busy_timeout_ms)
        if str(mode).lower() != "wal":
            raise StoreUnavailable(f"SQLite store {path} cannot use WAL mode (got {mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
        conn.execute("PRAGMA foreign_keys = OFF")
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int) -> object:
    """`PRAGMA journal_mode = WAL`, retried while another process creates the file.

    Switching needs an exclusive lock, and SQLite answers BUSY at once (without its busy
    handler) while another connection is switching or recovering the same file.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000
    pause = 0.001
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
