"""The PostgreSQL store: ACID checkpoints, one round trip per append, group commit.

`append` is one statement (`postgres_sql.APPEND`) that locks the trace's state row,
checks circuit, completion and fencing token, inserts the event with ON CONFLICT DO
NOTHING and returns what the rules need to tell an identical retry from a conflict;
concurrent appends share that statement as one multi-row transaction
(`postgres_batch`). `complete` and `acquire_lease` (`postgres_leases`, which also
counts the run's attempt and stores its start) are coalesced the same way, so a run
beside others makes no single-row commit of its own. Every time the store records comes
from the server's `now()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from ranvier import rules
from ranvier.errors import InvalidInput, RanvierError, RestoreConflict, TraceNotFound
from ranvier.model import (
    CompletionState,
    Intervention,
    Lease,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    TracePage,
    TraceStart,
    TraceStatus,
)
from ranvier.stores.base import StoreCapabilities
from ranvier.stores.closing import ClosesOnExit
from ranvier.stores.postgres.batch import RETRY, GroupCommit, Result
from ranvier.stores.postgres.compensation import PostgresCompensationIdempotencyStore
from ranvier.stores.postgres.connection import (
    RETRYABLE,
    Connections,
    PoolOptions,
    checkout,
    create_pool,
    translate,
)
from ranvier.stores.postgres.leases import PostgresLeases
from ranvier.stores.postgres.rows import (
    Pending,
    append_document,
    append_one_arguments,
    append_result,
    complete_document,
    event_columns,
    fork_columns,
    intervention_columns,
    summary_from_row,
    trace_from_row,
)
from ranvier.stores.postgres.schema import drop_schema, ensure_schema, validate_partitions
from ranvier.stores.postgres.sql import DEFAULT_PREFIX, render, validate_prefix

__all__ = ["PostgresCompensationIdempotencyStore", "PostgresPersistenceStore", "from_url"]

Completion = tuple[str, str, int | None]
"""A `complete` call waiting for its batch: trace id, completion value, fence."""


def _completion_result(call: Completion, row: Any) -> Result:
    """What COMPLETE's row means for the call: None (done, or a no-op) or the rules' error."""
    if row["written"]:
        return None
    trace_id, state, fence = call
    try:
        if not row["found"]:
            raise TraceNotFound(f"no trace is stored under {trace_id!r}")
        if not rules.completion_change(trace_id, row["completion"], CompletionState(state)):
            return None
        rules.check_fence(trace_id, fence, row["token"], row["expires_at_ms"], row["now_ms"])
    except RanvierError as exc:
        return exc
    return AssertionError("complete: the statement and the rules disagree")  # unreachable


def _fence(fence: object) -> int | None:
    if fence is not None and type(fence) is not int:
        raise InvalidInput(f"fence must be a lease's int token or None, got {fence!r}")
    return fence


class PostgresPersistenceStore(ClosesOnExit):
    """Checkpoints in PostgreSQL tables named `<table_prefix>_state`, `_events`, ...

    Build it with `await PostgresPersistenceStore.connect(url)`, or around a pool you
    own: `PostgresPersistenceStore(pool)`. Call `ensure_schema()` once at startup.
    """

    adapter = "postgres"
    capabilities = StoreCapabilities(durable=True, multi_process=True)

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        table_prefix: str = DEFAULT_PREFIX,
        partitions: int | None = None,
        acquire_timeout: float = 3.0,
        max_payload_bytes: int = rules.DEFAULT_MAX_PAYLOAD_BYTES,
        max_batch: int = 256,
        max_inflight_batches: int = 2,
        owns_pool: bool = False,
    ) -> None:
        self._pool = pool
        self._prefix = validate_prefix(table_prefix)
        self._partitions = validate_partitions(partitions)
        self._acquire_timeout = acquire_timeout
        self._max_payload_bytes = rules.validate_positive("max_payload_bytes", max_payload_bytes)
        self._owns_pool = owns_pool
        self._sql = render(self._prefix)
        self._connections = Connections(pool, acquire_timeout)
        self._batcher: GroupCommit[Pending] = GroupCommit(
            self._flush,
            max_batch=rules.validate_positive("max_batch", max_batch),
            max_inflight=rules.validate_positive("max_inflight_batches", max_inflight_batches),
        )
        # completes of concurrent runs share a statement and a commit, as appends do
        self._completer: GroupCommit[Completion] = GroupCommit(
            self._flush_completes,
            max_batch=self._batcher.max_batch,
            max_inflight=self._batcher.max_inflight,
        )
        self._leases = PostgresLeases(
            self._sql,
            self._connections,
            max_payload_bytes=self._max_payload_bytes,
            max_batch=self._batcher.max_batch,
            max_inflight=self._batcher.max_inflight,
        )
        self._compensations = PostgresCompensationIdempotencyStore(
            pool, self._sql, acquire_timeout=acquire_timeout, connections=self._connections
        )

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_connections: int = 5,
        max_connections: int = 20,
        acquire_timeout: float = 3.0,
        connect_timeout: float = 10.0,
        command_timeout: float | None = None,
        **options: Any,
    ) -> PostgresPersistenceStore:
        """Open a pool on `url` with the runbook's sizing; other options go to the store."""
        pool_options = PoolOptions(
            min_connections=min_connections,
            max_connections=max_connections,
            acquire_timeout=acquire_timeout,
            connect_timeout=connect_timeout,
            command_timeout=command_timeout,
        )
        validate_prefix(options.get("table_prefix", DEFAULT_PREFIX))  # before connecting
        pool = await create_pool(url, pool_options)
        return cls(pool, acquire_timeout=acquire_timeout, owns_pool=True, **options)

    def with_table_prefix(self, prefix: str) -> PostgresPersistenceStore:
        """A store on the same pool over the tables `<prefix>_*` (it does not own the pool)."""
        return PostgresPersistenceStore(
            self._pool,
            table_prefix=validate_prefix(prefix),
            partitions=self._partitions,
            acquire_timeout=self._acquire_timeout,
            max_payload_bytes=self._max_payload_bytes,
            max_batch=self._batcher.max_batch,
            max_inflight_batches=self._batcher.max_inflight,
        )

    @property
    def table_prefix(self) -> str:
        return self._prefix

    @property
    def pool(self) -> asyncpg.Pool:
        return self._pool

    @property
    def compensations(self) -> PostgresCompensationIdempotencyStore:
        return self._compensations

    def _conn(self) -> AbstractAsyncContextManager[Any]:
        return self._connections.checkout()

    async def ensure_schema(self, partitions: int | None = None) -> None:
        """Create or upgrade the tables; with `partitions` the events are hash-partitioned."""
        wanted = self._partitions if partitions is None else validate_partitions(partitions)
        async with checkout(self._pool, self._acquire_timeout) as conn:
            await ensure_schema(conn, self._prefix, wanted)

    async def drop_schema(self) -> None:
        """Drop every table of this prefix with all its data (tests, benchmarks)."""
        async with checkout(self._pool, self._acquire_timeout) as conn:
            await drop_schema(conn, self._prefix)

    # --- append -------------------------------------------------------------------

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        prepared = rules.prepare_envelope(envelope, max_payload_bytes=self._max_payload_bytes)
        pending: Pending = (prepared, _fence(fence))
        await self._batcher.submit(prepared.envelope.trace_id, pending)

    async def _flush(self, batch: Sequence[Pending]) -> list[Result]:
        """One APPEND statement for the batch: one transaction, one round trip."""
        if len(batch) == 1:
            return [await self._flush_one(batch[0])]
        try:
            document, fenced = append_document(batch)
        except (TypeError, ValueError):  # an int beyond 64 bits: let its own append fail
            return await self._flush_each(batch)
        try:
            async with self._conn() as conn:
                rows = await conn.fetch(self._sql.append, document, fenced)
        except RETRYABLE:  # another process locked the same traces in another order
            return [RETRY] * len(batch)
        except asyncpg.DataError:  # a value out of range: nothing was written
            return await self._flush_each(batch)
        results: list[Result] = [None] * len(batch)  # what comes back was not written
        for row in rows:
            index = row["idx"] - 1
            results[index] = append_result(batch[index], row, written=False)
        return results

    async def _flush_one(self, pending: Pending) -> Result:
        arguments = append_one_arguments(pending)
        if pending[1] is None:
            sql, arguments = self._sql.append_one, arguments[:9]
        else:
            sql = self._sql.append_one_fenced
        try:
            async with self._conn() as conn:
                row = await conn.fetchrow(sql, *arguments)
        except RETRYABLE:
            return RETRY
        return append_result(pending, row, written=row["written"])

    async def _flush_each(self, batch: Sequence[Pending]) -> list[Result]:
        """The batch one envelope at a time, so that a bad value fails only its append."""
        results: list[Result] = []
        for pending in batch:
            try:
                results.append(await self._flush_one(pending))
            except (asyncpg.DataError, OverflowError, TypeError, ValueError) as exc:
                results.append(exc)
        return results

    # --- reads --------------------------------------------------------------------

    async def load(self, trace_id: str) -> PersistedTrace | None:
        rules.validate_id("trace_id", trace_id)
        async with self._conn() as conn:
            row = await conn.fetchrow(self._sql.load, trace_id)
        return None if row is None else trace_from_row(trace_id, row)

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
        code = "any" if wanted is None else wanted.value
        if wanted in rules.COMPLETION_OF_STATUS:
            code = rules.COMPLETION_OF_STATUS[wanted].value
        async with self._conn() as conn:
            rows = await conn.fetch(
                self._sql.list_traces,
                after or "",
                circuit,
                updated_before_ms,
                code,
                limit,
                None if min_attempts is None else min(min_attempts, 1 << 31),  # beyond int4
            )
        items = tuple(summary_from_row(row) for row in rows)
        last = rules.encode_cursor(items[-1].trace_id) if len(items) == limit else None
        return TracePage(items=items, next_cursor=last)

    async def now_ms(self) -> int:
        async with self._conn() as conn:
            now: int = await conn.fetchval(self._sql.now_ms)
        return now

    # --- state changes (checked in Python under the trace's row lock) ------------

    async def _locked(self, conn: Any, trace_id: str, fence: int | None) -> Any:
        row = await conn.fetchrow(self._sql.lock_trace, trace_id, fence is not None)
        if row is None:
            raise TraceNotFound(f"no trace is stored under {trace_id!r}")
        return row

    @staticmethod
    def _check_fence(trace_id: str, fence: int | None, row: Any) -> None:
        rules.check_fence(trace_id, fence, row["token"], row["expires_at_ms"], row["now_ms"])

    async def resume(
        self, trace_id: str, from_step: int, *, fence: int | None = None
    ) -> ResumeCursor:
        rules.validate_id("trace_id", trace_id)
        fence = _fence(fence)
        async with self._conn() as conn, conn.transaction():
            row = await self._locked(conn, trace_id, fence)
            rules.check_open(trace_id, row["completion"])
            step = rules.check_resume_step(trace_id, from_step, row["last_step"])
            self._check_fence(trace_id, fence, row)
            await conn.execute(self._sql.resume, trace_id, step, row["epoch"] + 1)
        return ResumeCursor(trace_id=trace_id, next_step=step + 1)

    async def complete(
        self, trace_id: str, state: CompletionState, *, fence: int | None = None
    ) -> None:
        state = rules.validate_completion(state)
        rules.validate_id("trace_id", trace_id)
        await self._completer.submit(trace_id, (trace_id, state.value, _fence(fence)))

    async def _flush_completes(self, batch: Sequence[Completion]) -> list[Result]:
        """COMPLETE for one call, COMPLETE_BATCH for more: one statement, one commit."""
        if len(batch) > 1:
            try:
                document = complete_document(batch)
            except (TypeError, ValueError):  # a fence beyond 64 bits: its own call fails
                document = None
            if document is not None:
                try:
                    async with self._conn() as conn:
                        rows = await conn.fetch(self._sql.complete_batch, document)
                except RETRYABLE:  # another process locked the same traces in another order
                    return [RETRY] * len(batch)
                results: list[Result] = [None] * len(batch)
                for row in rows:
                    index = row["idx"] - 1
                    results[index] = _completion_result(batch[index], row)
                return results
        results = []
        for call in batch:
            try:
                async with self._conn() as conn:  # one statement: checks and update, atomic
                    row = await conn.fetchrow(self._sql.complete, *call)
            except RETRYABLE:
                results.append(RETRY)
                continue
            except (asyncpg.DataError, OverflowError) as exc:
                results.append(exc)
                continue
            results.append(_completion_result(call, row))
        return results

    async def save_intervention(self, trace_id: str, intervention: Intervention) -> None:
        data = rules.prepare_intervention(intervention, max_payload_bytes=self._max_payload_bytes)
        rules.validate_id("trace_id", trace_id)
        async with self._conn() as conn, conn.transaction():
            row = await self._locked(conn, trace_id, None)
            rules.check_open(trace_id, row["completion"])
            await conn.execute(
                self._sql.save_intervention,
                trace_id,
                intervention.target_node,
                intervention.timestamp_ms,
                None if data is None else data.decode(),
            )

    # --- deletes ------------------------------------------------------------------

    async def purge_completed(self, cutoff_ms: int, *, batch_size: int = 500) -> int:
        """Delete traces completed before `cutoff_ms`, one short transaction per batch."""
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        rules.validate_positive("batch_size", batch_size, maximum=rules.MAX_BATCH_SIZE)
        total = 0
        while True:
            async with self._conn() as conn:
                purged: int = await conn.fetchval(self._sql.purge_batch, cutoff_ms, batch_size)
            total += purged
            if purged < batch_size:
                return total

    async def delete(self, trace_id: str) -> bool:
        rules.validate_id("trace_id", trace_id)
        async with self._conn() as conn:
            deleted: int = await conn.fetchval(self._sql.delete_trace, trace_id)
        return deleted > 0

    # --- restore ------------------------------------------------------------------

    async def import_trace(self, trace: PersistedTrace) -> bool:
        prepared = rules.prepare_trace(trace, max_payload_bytes=self._max_payload_bytes)
        trace = prepared.trace
        epoch, columns = event_columns(prepared.events, prepared.superseded)
        interventions = list(zip(trace.interventions, prepared.interventions, strict=True))
        async with self._conn() as conn, conn.transaction():
            created = await conn.fetchval(
                self._sql.import_state,
                trace.trace_id,
                trace.circuit,
                trace.schematic_version,
                trace.resumed_from_step,
                epoch,
                None if trace.completion is None else CompletionState(trace.completion).value,
                trace.created_at_ms,
                trace.updated_at_ms,
                trace.completed_at_ms,
                None if prepared.input_json is None else prepared.input_json.decode(),
                trace.attempts,
                *fork_columns(trace.forked_from),
            )
            if created is not None:
                await conn.execute(self._sql.import_events, trace.trace_id, *columns)
                if interventions:
                    await conn.execute(
                        self._sql.import_interventions,
                        trace.trace_id,
                        *intervention_columns(interventions),
                    )
                return True
        existing = await self.load(trace.trace_id)
        if existing is not None and rules.trace_digest(existing) == rules.trace_digest(trace):
            return False
        raise RestoreConflict(
            f"trace {trace.trace_id!r} is already stored with different content; "
            "delete it first to restore the backup's version"
        )

    # --- leases -------------------------------------------------------------------

    async def acquire_lease(
        self, trace_id: str, holder: str, ttl_ms: int, *, start: TraceStart | None = None
    ) -> Lease | None:
        return await self._leases.acquire(trace_id, holder, ttl_ms, start)

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        return await self._leases.renew(lease, ttl_ms)

    async def release_lease(self, lease: Lease) -> bool:
        return await self._leases.release(lease)

    async def get_lease(self, trace_id: str) -> Lease | None:
        return await self._leases.get(trace_id)

    # --- lifecycle ----------------------------------------------------------------

    async def close(self) -> None:
        await self._batcher.close()
        await self._completer.close()
        await self._leases.close()
        await self._connections.close()
        if self._owns_pool:
            with translate():
                await self._pool.close()


async def from_url(url: str, **options: Any) -> PostgresPersistenceStore:
    """`postgresql://user:pass@host:5432/db` (or `postgres://`), for `open_store`.

    Takes `table_prefix=`, `partitions=` and the pool options of `connect`.
    """
    return await PostgresPersistenceStore.connect(url, **options)
