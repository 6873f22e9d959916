"""One SQLite file: its connections, the batching writer and the reader thread.

Writes are jobs: `job(conn)` runs inside a write transaction (BEGIN IMMEDIATE), checks
the rules and raises a `RanvierError` before its first write, or writes. Jobs submitted
while other tasks are runnable are coalesced: one `loop.call_soon` later, every pending
job runs in one transaction, and each caller is answered after that commit. When no
other callback is ready (nothing could join a batch) a job commits at once instead. A
job's rule error fails only that job; any other error rolls the batch back and its
jobs are retried one by one (`sqlite_batch` runs the transactions).

Where the transaction runs (see docs/decisions.md):
- inline on the loop thread, with busy_timeout 0, when synchronous is OFF or NORMAL
  (a WAL commit is then a few write() calls into the OS cache, no fsync);
- on the writer thread, with the full busy_timeout, when synchronous is FULL/EXTRA
  (commits fsync), when the job is heavy (purge, delete, import, resume, schema), and
  for a while after an inline attempt found the file locked by another connection.
WAL checkpoints (which fsync) run on the reader thread, never at an inline commit;
when the WAL has grown long, a last pass runs on the writer thread with writes paused,
so that SQLite can restart the WAL from its start (`_start_catch_up`).

A job may carry a `fast` statement (`submit_fast`, `commit_now`): one guarded statement
that does the whole job when no rule could object, tried before `work`. Committing at
once, it is its own autocommit transaction (no BEGIN/COMMIT round trips).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence, Sized
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from typing import Any, TypeVar

from ranvier.errors import StoreUnavailable
from ranvier.stores.sqlite.batch import BatchRunner, Busy, Job, Outcome, copy_error
from ranvier.stores.sqlite.connection import is_busy, translate_errors

T = TypeVar("T")
Work = Callable[[sqlite3.Connection], T]
Fallback = Callable[[sqlite3.Connection, tuple[object, ...]], T]
"""What runs when a job's fast statement declines: `fallback(conn, args)`, the statement's
parameters (a module-level function: no closure is made per job)."""
_time_ns = time.time_ns
_get_ident = threading.get_ident
_monotonic = time.monotonic

MAX_BATCH = 512
"""Most jobs per transaction (on the writer thread)."""
INLINE_MAX_BATCH = 64
"""Larger batches commit on the writer thread: bounds how long the loop is held."""
CONTENDED_SECONDS = 0.5
"""After a locked inline attempt, write on the thread for this long."""
EAGER_SLICE_S = 0.0005
"""Longest run of at-once commits without the loop getting a turn."""
CHECKPOINT_EVERY = 2000
"""Run a passive WAL checkpoint (in the reader thread) after this many committed jobs."""
RESTART_WAL_FRAMES = 8192
"""A WAL this long (frames of one page, 4 KiB: 32 MiB) is made to restart from its start
(a last checkpoint pass with writes paused); shorter, it keeps growing."""
CATCH_UP_PASSES = 2


class SqliteDatabase(BatchRunner):
    """The connections to one file, shared by a persistence store and its compensations."""

    def __init__(self, path: str, *, synchronous: str, busy_timeout_ms: int) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout_ms = busy_timeout_ms
        self._inline_mode = synchronous in ("OFF", "NORMAL")  # commits do not fsync
        self._translate = translate_errors(path)
        self._writer: sqlite3.Connection | None = None
        self._fast: sqlite3.Cursor | None = None  # the writer's, reused: no cursor per call
        self._reader: sqlite3.Connection | None = None
        self._write_thread = ThreadPoolExecutor(1, thread_name_prefix="ranvier-sqlite-w")
        self._read_thread = ThreadPoolExecutor(1, thread_name_prefix="ranvier-sqlite-r")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0  # the thread that last entered `_loop`
        self._new_future: Callable[[], asyncio.Future[Any]] = _no_loop_yet
        """`_loop.create_future`, or what it does (asyncio's own, without the Python call)."""
        self._pending: list[Job] = []
        self._heavy_pending = 0  # heavy jobs among them
        self.busy = False
        """A flush is scheduled or running: a write now would queue (read-only outside)."""
        self._closed = False
        self._contended_until = 0.0
        self._timeout_now = -1
        self._since_checkpoint = 0
        self._checkpointing = False
        self._catch_up = False  # a passive checkpoint ended: finish it with writes paused
        self._drained: asyncio.Future[None] | None = None
        self._turn_mark: asyncio.Handle | None = None
        self._thread_flush: asyncio.Task[None] | None = None  # referenced while it runs
        self._hog_since = 0.0
        self._ready: Sized | None = None

    # --- submitting work ----------------------------------------------------------

    def submit(self, work: Work[T], *, heavy: bool = False) -> asyncio.Future[T]:
        """Queue a write job; the future resolves after the commit that holds it."""
        return self.submit_fast(None, None, work, heavy)

    def submit_fast(
        self,
        fast: str | None,
        args: tuple[object, ...] | None,
        work: Fallback[T] | Work[T],
        heavy: bool = False,
    ) -> asyncio.Future[T]:
        """Queue a write job that one guarded statement usually does in full.

        `fast` runs first with `args + (now_ms,)` (the store clock when it runs): if it
        changes a row, it did the whole job; if it changes nothing, `work(conn, args)` runs
        (in the same transaction) and decides by the rules. Alone on the at-once path, the
        statement is its own autocommit transaction (one statement: atomic). `fast` None
        (`commit_now` said False): the fallback alone. `args` None (`submit`): `work(conn)`
        is the job; a `heavy` one runs on the thread.
        """
        if self._closed:
            raise StoreUnavailable(f"SQLite store {self.path} is closed")
        loop = self._loop
        if loop is None or self._loop_thread != _get_ident() or not loop.is_running():
            loop = self._enter_loop()  # `_running_loop`, inlined: this runs on every append
        future: asyncio.Future[T] = self._new_future()
        if not self.busy and self._may_commit_now(loop, heavy):
            try:
                with self._translate:
                    future.set_result(self._commit_one(work, fast, args))
            except Busy:
                self._contended_until = time.monotonic() + CONTENDED_SECONDS
            except Exception as exc:
                future.set_exception(exc)
                return future
            else:
                self._committed(1)
                return future  # done: `await future` returns without a loop turn
        self._pending.append((work, future, heavy, fast, args))
        if heavy:
            self._heavy_pending += 1
        if not self.busy:
            self.busy = True
            loop.call_soon(self._flush)
        return future

    def commit_now(self, fast: str, args: tuple[object, ...]) -> bool | None:
        """The at-once path of `submit_fast` without a future: run `fast` alone, now.

        True: it committed the whole job. False: it changed nothing (a rule may object):
        submit the checked job. None: it could not run now (a batch is forming, the file
        is locked, ...): `submit_fast`. Raises `StoreUnavailable` on a driver error.
        """
        if self.busy or self._closed:
            return None
        loop = self._running_loop()
        if loop is not self._loop or not self._may_commit_now(loop, False):
            return None
        conn, cursor = self._writer, self._fast
        assert conn is not None and cursor is not None
        if conn.in_transaction:  # never: a failed rollback; the statement must commit alone
            return None
        if self._timeout_now:
            self._set_timeout(conn, 0)
        try:
            changed = cursor.execute(fast, (*args, _time_ns() // 1_000_000)).rowcount
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise StoreUnavailable(f"SQLite store {self.path} failed: {exc}") from exc
            self._contended_until = time.monotonic() + CONTENDED_SECONDS
            return None
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path} failed: {exc}") from exc
        if not changed:
            return False
        self._since_checkpoint += 1
        if self._since_checkpoint >= CHECKPOINT_EVERY and not self._checkpointing:
            self._start_checkpoint()
        return True

    def _enter_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop; when it is not ours (first use, or asyncio.run per script
        step), make it ours."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            if self.busy:
                raise StoreUnavailable(f"SQLite store {self.path} is in use by another loop")
            self._loop, self._turn_mark, self._loop_thread = loop, None, _get_ident()
            self._checkpointing = self._catch_up = False  # the old loop's never finished
            self._ready = getattr(loop, "_ready", None)  # asyncio's ready queue; not uvloop's
            default = type(loop).create_future is asyncio.BaseEventLoop.create_future
            self._new_future = partial(asyncio.Future, loop=loop) if default else loop.create_future
        return loop

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        """The running loop: ours, if it runs and was entered in this thread.

        A thread runs one loop at a time, so that is the one; asking asyncio
        (`get_running_loop`) costs a getpid() system call each time, to notice a fork:
        one per append, ~0.5 us here.
        """
        loop = self._loop
        if loop is not None and self._loop_thread == _get_ident() and loop.is_running():
            return loop
        return asyncio.get_running_loop()

    async def read(self, work: Work[T]) -> T:
        """Run a read on the reader thread (its own connection, a WAL snapshot)."""
        if self._closed:
            raise StoreUnavailable(f"SQLite store {self.path} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_thread, self._run_read, work)

    def _run_read(self, work: Work[T]) -> T:
        with translate_errors(self.path):
            if self._reader is None:
                self._reader = self._connect()
            return work(self._reader)

    # --- the batch loop (loop thread) ---------------------------------------------

    def _may_commit_now(self, loop: asyncio.AbstractEventLoop, heavy: bool) -> bool:
        """Commit at once when no other callback is ready (none could join a batch).

        The caller then goes on without a loop turn; so that a task appending in a tight
        loop cannot starve the loop, this stops after EAGER_SLICE_S without one.
        """
        if heavy or not self._inline_mode or self._writer is None:
            return False
        ready = self._ready
        if ready is None or len(ready) > (self._turn_mark is not None):
            return False
        now = _monotonic()
        if now < self._contended_until:
            return False
        if self._turn_mark is None:
            self._hog_since = now
            self._turn_mark = loop.call_soon(self._loop_turned)
            return True
        return now - self._hog_since < EAGER_SLICE_S

    def _loop_turned(self) -> None:
        self._turn_mark = None

    def _inline_allowed(self, batch: list[Job]) -> bool:
        return (
            self._writer is not None
            and self._inline_mode
            and time.monotonic() >= self._contended_until
            and len(batch) <= INLINE_MAX_BATCH
            and not (self._heavy_pending and any(job[2] for job in batch))
        )

    def _flush(self) -> None:
        batch = self._pending
        if len(batch) <= MAX_BATCH:
            self._pending = []
        else:
            batch, self._pending = batch[:MAX_BATCH], batch[MAX_BATCH:]
        if self._heavy_pending:
            self._heavy_pending -= sum(job[2] for job in batch)
        if self._inline_allowed(batch):
            try:
                outcomes = self._run_batch(batch, inline=True)
            except Busy:
                self._contended_until = time.monotonic() + CONTENDED_SECONDS
            else:
                self._done(batch, outcomes)
                return
        assert self._loop is not None
        self._thread_flush = self._loop.create_task(self._flush_in_thread(batch))

    async def _flush_in_thread(self, batch: list[Job]) -> None:
        assert self._loop is not None
        try:
            outcomes = await self._loop.run_in_executor(
                self._write_thread, self._run_batch, batch, False
            )
        except Exception as exc:  # the thread could not run it at all (shut down)
            error = StoreUnavailable(f"SQLite store {self.path} cannot write: {exc}")
            outcomes = [Outcome(False, copy_error(error)) for _ in batch]
        self._done(batch, outcomes)

    def _done(self, batch: Sequence[Job], outcomes: list[Outcome]) -> None:
        for job, outcome in zip(batch, outcomes, strict=True):
            future = job[1]
            if future.done():
                continue  # the caller was cancelled; its write may still be stored
            if outcome.ok:
                future.set_result(outcome.value)
            else:
                future.set_exception(outcome.value)
        self._committed(len(batch))
        self._next()

    def _next(self) -> None:
        """After a batch (or a checkpoint's catch-up): the next batch, or idle."""
        assert self._loop is not None
        if self._catch_up and not self._closed:
            self._start_catch_up()
            return
        if self._pending:
            self._loop.call_soon(self._flush)
            return
        self.busy = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _committed(self, jobs: int) -> None:
        self._since_checkpoint += jobs
        if self._since_checkpoint >= CHECKPOINT_EVERY and not self._checkpointing:
            self._start_checkpoint()

    # --- checkpoints and closing --------------------------------------------------

    def _start_checkpoint(self, passes: int = 1) -> None:
        assert self._loop is not None
        self._checkpointing, self._since_checkpoint = True, 0
        future = self._loop.run_in_executor(self._read_thread, self._run_read, _checkpoint)
        future.add_done_callback(lambda done: self._checkpoint_done(done, passes))

    def _checkpoint_done(self, future: asyncio.Future[Any], passes: int) -> None:
        """One checkpoint at a time: `_checkpointing` holds until the catch-up is over."""
        if future.cancelled() or future.exception() is not None or self._closed:
            self._checkpointing = False
            return  # a failed passive checkpoint is retried next time
        if future.result() < RESTART_WAL_FRAMES:
            self._checkpointing = False
            return
        if passes < CATCH_UP_PASSES:  # another pass beside the writes: less left to pause for
            self._start_checkpoint(passes + 1)
            return
        self._catch_up = True
        if not self.busy:
            self.busy = True
            self._start_catch_up()

    def _start_catch_up(self) -> None:
        """Copy what was committed during the passive checkpoint, with writes paused.

        A passive checkpoint runs beside the writes, so it never ends with every frame
        copied, and SQLite restarts the WAL from its start only then: under a steady
        load the WAL grew without bound (2 GB after 256,000 appends) and every commit
        got slower. Pausing writes for this short second pass (the pages changed since
        the first, usually a few ms) lets the next transaction restart the WAL.
        """
        assert self._loop is not None
        self._catch_up = False
        self._thread_flush = self._loop.create_task(self._catch_up_in_thread())

    async def _catch_up_in_thread(self) -> None:
        assert self._loop is not None
        try:
            await self._loop.run_in_executor(self._write_thread, self._final_checkpoint)
        except asyncio.CancelledError:  # the loop is shutting down (asyncio.run returned)
            self._checkpointing = self.busy = False
            raise
        except Exception:  # best effort: retried after the next checkpoint
            pass
        self._checkpointing = False
        self._next()

    def _final_checkpoint(self) -> None:
        conn = self._writer
        if conn is not None:
            self._set_timeout(conn, 0)  # never wait for another process: retried later
            with suppress(sqlite3.Error):
                _checkpoint(conn)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.busy and self._loop is not None:
            self._drained = self._loop.create_future()
            await self._drained
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._write_thread, _close_conn, self._writer)
        await loop.run_in_executor(self._read_thread, _close_conn, self._reader)
        self._writer = self._reader = self._fast = None
        self._write_thread.shutdown(wait=False)
        self._read_thread.shutdown(wait=False)


def _no_loop_yet() -> asyncio.Future[Any]:
    raise AssertionError("no loop entered yet")  # `_enter_loop` sets `_new_future` first


def _checkpoint(conn: sqlite3.Connection) -> int:
    """A passive checkpoint; the WAL's length in frames (-1 if it is not in WAL mode)."""
    row = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return -1 if row is None else int(row[1])


def _close_conn(conn: sqlite3.Connection | None) -> None:
    if conn is not None:
        conn.close()
