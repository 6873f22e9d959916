"""The SQLite store: the embedded durable default (`sqlite:///ranvier.db`).

WAL mode, one file, several processes may share it. Concurrent writes of one process
are coalesced into one transaction (see `sqlite_writer`); reads run on a thread. The
tables are those of the runbook (see `sqlite_schema`); the rules are `rules`'.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

from ranvier import rules
from ranvier.errors import InvalidInput
from ranvier.model import (
    CompletionState,
    Intervention,
    Lease,
    LeaseToken,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    StoreDescription,
    TracePage,
    TraceStart,
    TraceStatus,
    now_ms,
)
from ranvier.stores.base import StoreCapabilities
from ranvier.stores.closing import ClosesOnExit
from ranvier.stores.sqlite import rows as read
from ranvier.stores.sqlite import sql
from ranvier.stores.sqlite import writes as ops
from ranvier.stores.sqlite.compensation import SqliteCompensationIdempotencyStore
from ranvier.stores.sqlite.connection import SYNCHRONOUS_MODES, inspect_file, too_large
from ranvier.stores.sqlite.schema import CODE_VERSION, OBJECTS, migrate
from ranvier.stores.sqlite.writer import SqliteDatabase

__all__ = ["SqliteCompensationIdempotencyStore", "SqlitePersistenceStore", "from_url"]

DEFAULT_BUSY_TIMEOUT_MS = 5000


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


def validate_synchronous(value: object) -> str:
    mode = str(value).upper()
    if mode not in SYNCHRONOUS_MODES:
        raise InvalidInput(
            f"synchronous={value!r} is not one of {', '.join(SYNCHRONOUS_MODES)}; NORMAL "
            "survives a killed process, FULL also survives power loss"
        )
    return mode


def _append_checked(conn: sqlite3.Connection, args: tuple[object, ...]) -> None:
    """An append that APPEND_FAST(_FENCED) did not take, from that statement's parameters
    (a function of them rather than a closure per append: ~2,500 instructions less)."""
    trace_id, step, kind, node_id, timestamp_ms, digest, payload, version, circuit, *fence = args
    envelope = PersistenceEnvelope(
        trace_id=cast(str, trace_id),
        circuit=cast(str, circuit),
        schematic_version=cast(str, version),
        step=cast(int, step),
        outcome_kind=OutcomeKind(cast(str, kind)),
        node_id=cast(str, node_id) or None,
        timestamp_ms=cast(int, timestamp_ms),
        payload_hash=cast(str, digest) or None,
        payload=rules.decode_payload(cast(str, payload) or None),
    )
    text = cast(str, payload) or None
    ops.append_checked(conn, envelope, text, cast(int, fence[0]) if fence else None, now_ms())


def _complete_checked(conn: sqlite3.Connection, args: tuple[object, ...]) -> None:
    trace_id, state, fence = args
    ops.complete(
        conn, cast(str, trace_id), CompletionState(cast(str, state)), cast(int | None, fence)
    )


class SqlitePersistenceStore(ClosesOnExit):
    """Checkpoints in one SQLite file (WAL): durable across process crashes.

    `synchronous="NORMAL"` (default): every acknowledged append survives a killed
    process; `"FULL"`: it also survives power loss (each commit fsyncs, on a thread).
    """

    adapter = "sqlite"
    capabilities = StoreCapabilities(durable=True, multi_process=True)

    def __init__(
        self,
        path: str | os.PathLike[str] = "ranvier.db",
        *,
        synchronous: str = "NORMAL",
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        max_payload_bytes: int = rules.DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self._max_payload_bytes = rules.validate_positive("max_payload_bytes", max_payload_bytes)
        timeout = rules.validate_positive("busy_timeout_ms", busy_timeout_ms)
        self.path = os.fspath(path)
        if not self.path or self.path == ":memory:" or "\x00" in self.path:
            raise InvalidInput(f"SQLite path {self.path!r} must name a file")
        self._db = SqliteDatabase(
            self.path, synchronous=validate_synchronous(synchronous), busy_timeout_ms=timeout
        )
        self._compensations = SqliteCompensationIdempotencyStore(self._db)

    @property
    def compensations(self) -> SqliteCompensationIdempotencyStore:
        return self._compensations

    async def ensure_schema(self) -> None:
        """Create the file or migrate the tables; one process at a time (BEGIN IMMEDIATE).

        Until it is called, the store only opens a file that holds the schema (else
        `SchemaMissing`), so a read-only command never creates one.
        """
        self._db.create_file = True
        await self._db.submit(lambda conn: migrate(conn, self.path), heavy=True)

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        data, digest, kind = rules.check_envelope(envelope, self._max_payload_bytes)
        payload = None if data is None else data.decode()
        args: tuple[object, ...] = (  # APPEND_FAST's parameters but now_ms (the writer's)
            envelope.trace_id,
            envelope.step,
            kind._value_,  # `.value` is a Python-level property
            envelope.node_id or "",  # never None: see APPEND_FAST
            envelope.timestamp_ms,
            digest or "",
            payload or "",
            envelope.schematic_version,
            envelope.circuit,
        )
        if fence is None:
            fast = sql.APPEND_FAST
        else:
            fast, args = sql.APPEND_FAST_FENCED, (*args, fence)
        db = self._db
        try:
            done = None if db.busy else db.commit_now(fast, args)  # no future, no loop turn
        except OverflowError as exc:  # a fence past 64 bits: the driver checks it, not us
            raise too_large(exc) from exc
        if not done:  # None: it could not run now; False: it declined, the rules decide
            await db.submit_fast(None if done is False else fast, args, _append_checked)

    async def load(self, trace_id: str) -> PersistedTrace | None:
        rules.validate_id("trace_id", trace_id)
        return await self._db.read(read.in_snapshot(lambda conn: read.load_trace(conn, trace_id)))

    async def resume(
        self, trace_id: str, from_step: int, *, fence: int | None = None
    ) -> ResumeCursor:
        rules.validate_id("trace_id", trace_id)
        rules.validate_step(from_step, what="from_step", minimum=-1)
        return await self._db.submit(
            lambda conn: ops.resume(conn, trace_id, from_step, fence), heavy=True
        )

    async def complete(
        self, trace_id: str, state: CompletionState, *, fence: int | None = None
    ) -> None:
        state = rules.validate_completion(state)
        rules.validate_id("trace_id", trace_id)
        db, args = self._db, (trace_id, state.value, fence)
        if fence is not None:  # completion and lease release: one transaction, two writes
            await db.submit_fast(None, args, _complete_checked)
            return
        done = db.commit_now(sql.COMPLETE_FAST, args)
        if not done:
            fast = None if done is False else sql.COMPLETE_FAST
            await db.submit_fast(fast, args, _complete_checked)

    async def save_intervention(self, trace_id: str, intervention: Intervention) -> None:
        data = rules.prepare_intervention(intervention, max_payload_bytes=self._max_payload_bytes)
        rules.validate_id("trace_id", trace_id)
        bare = replace(intervention, payload_override=None)
        await self._db.submit(lambda conn: ops.save_intervention(conn, trace_id, bare, _text(data)))

    async def list_traces(
        self,
        *,
        status: TraceStatus | None = None,
        circuit: str | None = None,
        updated_before_ms: int | None = None,
        min_attempts: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TracePage:
        wanted, after = rules.validate_list_query(
            status, circuit, updated_before_ms, limit, cursor, min_attempts
        )

        def work(conn: sqlite3.Connection) -> TracePage:
            return read.list_traces(
                conn, wanted, circuit, updated_before_ms, min_attempts, after, limit
            )

        return await self._db.read(work)

    async def purge_completed(
        self, cutoff_ms: int, *, batch_size: int = 500, limit: int | None = None
    ) -> int:
        """Each batch is its own transaction, so a large purge never holds the lock long."""
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        rules.validate_positive("batch_size", batch_size, maximum=rules.MAX_BATCH_SIZE)
        if limit is not None:
            rules.validate_positive("limit", limit)
        total = 0
        while limit is None or total < limit:
            size = batch_size if limit is None else min(batch_size, limit - total)
            work = partial(ops.purge_batch, cutoff_ms=cutoff_ms, batch_size=size)
            count = await self._db.submit(work, heavy=True)
            total += count
            if count < size:
                break
        return total

    async def count_completed_before(self, cutoff_ms: int) -> int:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        return await self._db.read(
            lambda conn: int(conn.execute(sql.COUNT_COMPLETED_BEFORE, (cutoff_ms,)).fetchone()[0])
        )

    async def count_traces_by_status(self) -> dict[TraceStatus, int]:
        return await self._db.read(read.count_by_status)

    async def load_many(self, trace_ids: Sequence[str]) -> list[PersistedTrace]:
        """One job on the reader thread, in one snapshot."""
        ids = [rules.validate_id("trace_id", trace_id) for trace_id in trace_ids]
        if not ids:
            return []
        return await self._db.read(read.in_snapshot(lambda conn: read.load_traces(conn, ids)))

    async def describe(self) -> StoreDescription:
        """Read on a connection of its own that only reads: creates nothing, not the file."""
        db = self._db
        found = await asyncio.to_thread(inspect_file, self.path, db.busy_timeout_ms)
        location, version, journal = found
        return StoreDescription(
            adapter=self.adapter,
            location=location,
            schema_version=version,
            latest_schema_version=CODE_VERSION,
            objects=OBJECTS,
            settings={
                "path": self.path,
                "journal_mode": journal,
                "synchronous": db.synchronous,
                "busy_timeout": db.busy_timeout_ms,
            },
        )

    async def list_lease_tokens(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[LeaseToken]:
        if after is not None:
            rules.validate_id("after", after)
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        return await self._db.read(lambda conn: read.lease_tokens(conn, after, limit))

    async def raise_lease_token(self, trace_id: str, token: int) -> None:
        rules.validate_token(LeaseToken(trace_id=trace_id, token=token))
        await self._db.submit(lambda conn: ops.raise_lease_token(conn, trace_id, token))

    async def delete(self, trace_id: str) -> bool:
        rules.validate_id("trace_id", trace_id)
        return await self._db.submit(lambda conn: ops.delete(conn, trace_id), heavy=True)

    async def import_trace(self, trace: PersistedTrace) -> bool:
        """Atomic: the whole trace is written in one transaction, or nothing."""
        prepared = rules.prepare_trace(trace, max_payload_bytes=self._max_payload_bytes)
        trace = prepared.trace
        events = [
            (p.envelope, _text(p.payload_json)) for p in (*prepared.events, *prepared.superseded)
        ]
        interventions = [
            (replace(i, payload_override=None), _text(data))
            for i, data in zip(trace.interventions, prepared.interventions, strict=True)
        ]
        rows, rewinds = ops.import_rows(trace, events)
        data = _text(prepared.input_json)
        return await self._db.submit(
            lambda conn: ops.import_trace(conn, trace, data, rows, rewinds, interventions),
            heavy=True,
        )

    async def acquire_lease(
        self, trace_id: str, holder: str, ttl_ms: int, *, start: TraceStart | None = None
    ) -> Lease | None:
        """One job, one transaction: the lease, the attempt it counts and, with `start`,
        the trace's creation (see `ops.acquire_lease`)."""
        ttl_ms = rules.validate_lease_request(trace_id, holder, ttl_ms)
        begin: ops.StartRow | None = None
        if start is not None:
            prepared = rules.prepare_start(start, max_payload_bytes=self._max_payload_bytes)
            begin = (
                prepared.start.circuit,
                prepared.start.schematic_version,
                _text(prepared.input_json),
            )
        return await self._db.submit(
            lambda conn: ops.acquire_lease(conn, trace_id, holder, ttl_ms, begin)
        )

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        ttl_ms = rules.validate_lease_request(lease.trace_id, lease.holder, ttl_ms)
        return await self._db.submit(lambda conn: ops.renew_lease(conn, lease, ttl_ms))

    async def release_lease(self, lease: Lease) -> bool:
        rules.validate_id("trace_id", lease.trace_id)
        return await self._db.submit(lambda conn: ops.release_lease(conn, lease))

    async def get_lease(self, trace_id: str) -> Lease | None:
        rules.validate_id("trace_id", trace_id)
        return await self._db.read(lambda conn: read.live_lease(conn, trace_id))

    async def now_ms(self) -> int:
        """The store clock is this process's clock (one host shares the file)."""
        return now_ms()

    async def close(self) -> None:
        """Waits for writes already submitted, then closes the connections."""
        await self._db.close()


def path_of_url(url: str) -> tuple[str, dict[str, str]]:
    """`sqlite:///relative.db` -> relative.db; `sqlite:////abs/path.db` -> /abs/path.db."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise InvalidInput(
            f"SQLite URL {url!r} must look like sqlite:///relative.db or sqlite:////abs/path.db"
        )
    path = unquote(parts.path[1:])
    if not path:
        raise InvalidInput(f"SQLite URL {url!r} names no file; e.g. sqlite:///ranvier.db")
    return path, dict(parse_qsl(parts.query, strict_parsing=False))


_INT_OPTIONS = ("busy_timeout_ms", "max_payload_bytes")


async def from_url(url: str, **options: Any) -> SqlitePersistenceStore:
    """Open a store from its URL; query parameters and `options` set the constructor's
    keywords (`?synchronous=FULL&busy_timeout_ms=10000`), `options` winning."""
    path, query = path_of_url(url)
    merged: dict[str, Any] = {**query, **options}
    unknown = set(merged) - {"synchronous", *_INT_OPTIONS}
    if unknown:
        raise InvalidInput(
            f"unknown SQLite store option(s) {', '.join(sorted(unknown))}; use synchronous, "
            "busy_timeout_ms or max_payload_bytes"
        )
    for name in _INT_OPTIONS:
        if isinstance(merged.get(name), str):
            if not merged[name].isdigit():
                raise InvalidInput(f"{name}={merged[name]!r} must be a positive integer")
            merged[name] = int(merged[name])
    return SqlitePersistenceStore(path, **merged)
