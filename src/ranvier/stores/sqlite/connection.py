"""Connections to a SQLite file: our pragmas, and the one place driver errors are translated."""

from __future__ import annotations

import os
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from ranvier.errors import InvalidInput, SchemaMissing, StoreUnavailable
from ranvier.rules import MAX_INT
from ranvier.stores.sqlite.schema import stored_version

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
        if isinstance(exc, OverflowError):
            raise too_large(exc) from exc


def too_large(exc: OverflowError) -> InvalidInput:
    """The driver refused to bind an int past 64 bits. The rules refuse steps, times and
    counts first; what reaches here is a fencing token (a fence, or the token after the
    largest one), which the hot paths leave to the driver rather than check."""
    return InvalidInput(
        f"a fencing token or other number is too large for SQLite ({exc}); every number "
        f"must be at most 2**63 - 1 ({MAX_INT})"
    )


def schema_missing(path: str) -> SchemaMissing:
    return SchemaMissing(f"no ranvier schema at sqlite:///{path} (run `ranvier schema ensure`)")


def file_uri(path: str, mode: str) -> str:
    """`path` as a `file:` URI opened in `mode` (ro, rw: never creates the file)."""
    return f"{Path(os.path.abspath(path)).as_uri()}?mode={mode}"


def is_busy(exc: BaseException | None) -> bool:
    code = getattr(exc, "sqlite_errorcode", 0)
    return isinstance(exc, sqlite3.OperationalError) and code & 0xFF == sqlite3.SQLITE_BUSY


def connect(
    path: str, *, synchronous: str, busy_timeout_ms: int, create: bool = True
) -> sqlite3.Connection:
    """A connection in WAL mode with our pragmas (the bench's floor uses this too).

    `create` False (a store whose schema was not ensured): the file must exist and hold
    the schema, else `SchemaMissing`; nothing is created or switched to WAL before that.
    """
    try:
        conn = sqlite3.connect(
            path if create else file_uri(path, "rw"),
            timeout=busy_timeout_ms / 1000,
            isolation_level=None,
            check_same_thread=False,
            cached_statements=256,
            uri=not create,
        )
    except sqlite3.OperationalError:
        if not create and not os.path.exists(path):
            raise schema_missing(path) from None
        raise
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        if not create and not stored_version(conn):
            raise schema_missing(path)
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


def inspect_file(path: str, busy_timeout_ms: int) -> tuple[str, int | None, str | None]:
    """The file's absolute path, stored schema version (None: no schema) and journal mode
    (None: no file), read without creating or changing anything (`describe`).

    Opened read-write (SQLite falls back to read-only for a write-protected file), though
    it only reads: a read-only connection to a WAL file leaves the -wal and -shm files it
    needed behind, where the last read-write one removes them.
    """
    location = os.path.abspath(path)
    if not os.path.exists(path):
        return location, None, None
    with translate_errors(path):
        uri = file_uri(path, "rw")
        with closing(sqlite3.connect(uri, uri=True, timeout=busy_timeout_ms / 1000)) as conn:
            version = stored_version(conn)
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    return location, version or None, str(mode)
