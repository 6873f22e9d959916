"""Running write jobs on the writer connection: a batch in one transaction, an outcome
per job (`sqlite_writer` decides when and where a batch runs; this runs it).

A batch is one BEGIN IMMEDIATE ... COMMIT. A job that raises a `RanvierError` before
its first write fails alone and the rest of its batch commits; any other error (or a
rule error after a write) rolls the batch back and its jobs run again one by one, so one
bad job never fails the others. Inline (on the loop thread) the busy timeout is 0, and a
file locked by another connection raises `Busy` for the writer to retry on its thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from ranvier.errors import RanvierError, StoreUnavailable
from ranvier.stores.sqlite.connection import connect, is_busy, translate_errors

_time_ns = time.time_ns


def _now_ms() -> int:
    """The store clock (`model.now_ms`)."""
    return _time_ns() // 1_000_000


class Busy(Exception):
    """An inline BEGIN IMMEDIATE found the file locked by another connection."""


Job = tuple[Callable[..., Any], asyncio.Future[Any], bool, str | None, tuple[object, ...] | None]
"""(work, future, heavy, fast, args): a plain tuple, built on every append (cheaper than
a dataclass's `__init__`). args None: `work(conn)` is the job; else `fast` (if any) runs
with args + (now_ms,), and `work(conn, args)` if it changed nothing."""


@dataclass(slots=True)
class Outcome:
    ok: bool
    value: Any


_DONE = Outcome(True, None)
"""The outcome of a job that its fast statement did in full (shared: never mutated)."""


class BatchRunner:
    """The writer connection's transactions; `SqliteDatabase` (which sets these
    attributes) schedules them."""

    path: str
    synchronous: str
    busy_timeout_ms: int
    _writer: sqlite3.Connection | None
    _fast: sqlite3.Cursor | None  # the writer's, reused: no cursor per call
    _timeout_now: int  # the writer's busy_timeout now (-1: not set yet)
    create_file = False
    """Connections may create the file (set by `ensure_schema`); until then they open an
    existing file with the schema, or raise `SchemaMissing`."""

    def _connect(self) -> sqlite3.Connection:
        return connect(
            self.path,
            synchronous=self.synchronous,
            busy_timeout_ms=self.busy_timeout_ms,
            create=self.create_file,
        )

    def _run_batch(self, batch: Sequence[Job], inline: bool) -> list[Outcome]:
        """Each job's outcome; raises `Busy` if an inline attempt found the file locked."""
        try:
            with translate_errors(self.path):
                return self._transaction(batch, inline)
        except StoreUnavailable as exc:
            if len(batch) == 1 or is_busy(exc.__cause__):  # retrying alone would wait again
                return [Outcome(False, copy_error(exc)) for _ in batch]
            return [self._run_alone(job, inline) for job in batch]
        except Busy:
            raise
        except Exception as exc:  # a job wrote, then failed: run them alone to find it
            if len(batch) == 1:
                return [Outcome(False, exc)]
            return [self._run_alone(job, inline) for job in batch]

    def _run_alone(self, job: Job, inline: bool) -> Outcome:
        try:
            with translate_errors(self.path):
                return self._transaction([job], inline)[0]
        except Busy:
            return Outcome(False, StoreUnavailable(f"SQLite store {self.path} is locked"))
        except Exception as exc:
            return Outcome(False, exc)

    def _commit_one(
        self, work: Callable[..., Any], fast: str | None, args: tuple[object, ...] | None
    ) -> Any:
        """The at-once path: one job, its own transaction, rolled back on any error."""
        conn, cursor = self._writer, self._fast
        assert conn is not None and cursor is not None
        if self._timeout_now:
            self._set_timeout(conn, 0)
        try:
            if (
                fast is not None
                and args is not None
                and cursor.execute(fast, (*args, _now_ms())).rowcount
            ):
                return None  # one statement: SQLite's autocommit made it atomic
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if is_busy(exc):
                raise Busy from exc
            raise
        try:
            value = work(conn) if args is None else work(conn, args)
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        return value

    def _transaction(self, batch: Sequence[Job], inline: bool) -> list[Outcome]:
        conn = self._writer
        if conn is None:
            conn = self._writer = self._connect()
            self._fast = conn.cursor()
        self._set_timeout(conn, 0 if inline else self.busy_timeout_ms)
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if inline and is_busy(exc):
                raise Busy from exc
            raise
        try:
            now = _now_ms()
            execute = self._fast.execute  # type: ignore[union-attr]
            outcomes = [
                _DONE
                if fast is not None and args is not None and execute(fast, (*args, now)).rowcount
                else self._run_job(conn, work, args)
                for work, _, _, fast, args in batch
            ]
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)
            raise
        return outcomes

    @staticmethod
    def _run_job(
        conn: sqlite3.Connection, work: Callable[..., Any], args: tuple[object, ...] | None
    ) -> Outcome:
        changes = conn.total_changes
        try:
            return Outcome(True, work(conn) if args is None else work(conn, args))
        except RanvierError as exc:
            if conn.total_changes != changes:
                raise  # a rule failed after a write: roll the batch back, retry alone
            return Outcome(False, exc)

    def _set_timeout(self, conn: sqlite3.Connection, ms: int) -> None:
        if self._timeout_now != ms:
            conn.execute(f"PRAGMA busy_timeout = {int(ms)}")
            self._timeout_now = ms


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with suppress(sqlite3.Error):  # already rolled back (SQLITE_FULL...): keep the first
            conn.execute("ROLLBACK")


def copy_error(error: StoreUnavailable) -> StoreUnavailable:
    """One exception object per waiting caller (each raise mutates its traceback)."""
    copy = StoreUnavailable(str(error))
    copy.__cause__ = error.__cause__
    return copy
