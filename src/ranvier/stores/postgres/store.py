"""The PostgreSQL store: ACID checkpoints, one round trip per append, group commit.

`append` is one statement (`sql.traces.APPEND`) that locks the trace's state row,
checks circuit, completion and fencing token, inserts the event with ON CONFLICT DO
NOTHING and returns what the rules need to tell an identical retry from a conflict;
concurrent appends share that statement as one multi-row transaction (`batch`,
`writes`). `complete` and `acquire_lease` (`leases`, which also counts the run's attempt
and stores its start) are coalesced the same way, so a run beside others makes no
single-row commit of its own. Counts, purge, restore and `describe` live in
`maintenance`. Every time the store records comes from the server's `now()`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from ranvier import rules
from ranvier.errors import TraceNotFound
from ranvier.model import (
    CompletionState,
    Intervention,
    Lease,
    LeaseToken,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    StoreDescription,
    TracePage,
    TraceStart,
    TraceStatus,
)
from ranvier.stores.base import StoreCapabilities
from ranvier.stores.closing import ClosesOnExit
from ranvier.stores.postgres.batch import GroupCommit
from ranvier.stores.postgres.compensation import PostgresCompensationIdempotencyStore
from ranvier.stores.postgres.connection import (
    Connections,
    PoolOptions,
    checkout,
    create_pool,
    split_url,
    translate,
)
from ranvier.stores.postgres.leases import PostgresLeases
from ranvier.stores.postgres.maintenance import Maintenance
from ranvier.stores.postgres.rows import Pending, summary_from_row, trace_from_row
from ranvier.stores.postgres.schema import drop_schema, ensure_schema, validate_partitions
from ranvier.stores.postgres.sql import DEFAULT_PREFIX, render, validate_prefix
from ranvier.stores.postgres.writes import Completion, Writes, check_fence_value

__all__ = ["PostgresCompensationIdempotencyStore", "PostgresPersistenceStore", "from_url"]

_fence = check_fence_value


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
        url: str | None = None,
    ) -> None:
        self._pool = pool
        self._prefix = validate_prefix(table_prefix)
        self._partitions = validate_partitions(partitions)
        self._acquire_timeout = acquire_timeout
        self._max_payload_bytes = rules.validate_positive("max_payload_bytes", max_payload_bytes)
        self._owns_pool = owns_pool
        self._url = url
        self._sql = render(self._prefix)
        self._connections = Connections(pool, acquire_timeout)
        writes = Writes(self._sql, self._connections)
        self._flush = writes.appends
        self._batcher: GroupCommit[Pending] = GroupCommit(
            self._flush,
            max_batch=rules.validate_positive("max_batch", max_batch),
            max_inflight=rules.validate_positive("max_inflight_batches", max_inflight_batches),
        )
        # completes of concurrent runs share a statement and a commit, as appends do
        self._flush_completes = writes.completes
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
        self._maintenance = Maintenance(
            self._sql,
            self._connections,
            pool=pool,
            prefix=self._prefix,
            url=url,
            max_payload_bytes=self._max_payload_bytes,
        )

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        min_connections: int | None = None,
        max_connections: int | None = None,
        acquire_timeout: float | None = None,
        connect_timeout: float | None = None,
        command_timeout: float | None = None,
        **options: Any,
    ) -> PostgresPersistenceStore:
        """Open a pool on `url` with the runbook's sizing (`PoolOptions`: 5 to 20
        connections, 3 s to get one); other options go to the store. The URL may carry
        any of them as query parameters (`?table_prefix=x&max_connections=8`); arguments
        given here win."""
        dsn, settings = split_url(url)
        given = {
            "min_connections": min_connections,
            "max_connections": max_connections,
            "acquire_timeout": acquire_timeout,
            "connect_timeout": connect_timeout,
            "command_timeout": command_timeout,
        }
        settings |= options | {k: v for k, v in given.items() if v is not None}
        pool_options = PoolOptions(**{k: settings.pop(k) for k in given if k in settings})
        validate_prefix(settings.get("table_prefix", DEFAULT_PREFIX))  # before connecting
        validate_partitions(settings.get("partitions"))
        pool = await create_pool(dsn, pool_options)
        timeout = pool_options.acquire_timeout
        return cls(pool, acquire_timeout=timeout, owns_pool=True, url=url, **settings)

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
            url=self._url,
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
        """Create or upgrade the tables; with `partitions` the events are hash-partitioned.

        After a migration, the pool's connections are replaced: their prepared statements
        were planned for the tables as they were."""
        wanted = self._partitions if partitions is None else validate_partitions(partitions)
        async with checkout(self._pool, self._acquire_timeout) as conn:
            migrated = await ensure_schema(conn, self._prefix, wanted)
        if migrated:
            await self._connections.close_idle()
            await self._pool.expire_connections()

    async def drop_schema(self) -> None:
        """Drop every table of this prefix with all its data (tests, benchmarks)."""
        async with checkout(self._pool, self._acquire_timeout) as conn:
            await drop_schema(conn, self._prefix)

    async def describe(self) -> StoreDescription:
        """Adapter, URL (password masked), stored and latest schema version, the tables,
        and what `doctor` judges: `synchronous_commit`, the server's `max_connections`,
        the pool's `pool_min`/`pool_max`, `partitions`. Creates nothing."""
        return await self._maintenance.describe()

    # --- append -------------------------------------------------------------------

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        prepared = rules.prepare_envelope(envelope, max_payload_bytes=self._max_payload_bytes)
        pending: Pending = (prepared, _fence(fence))
        await self._batcher.submit(prepared.envelope.trace_id, pending)

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
                None if min_attempts is None else min(min_attempts, rules.MAX_INT),
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
        rules.validate_step(from_step, what="from_step", minimum=-1)  # before any I/O
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

    # --- deletes, counts, restore (`postgres.maintenance`) --------------------------

    async def purge_completed(
        self, cutoff_ms: int, *, batch_size: int = 500, limit: int | None = None
    ) -> int:
        """Delete traces completed before `cutoff_ms` (earliest first, at most `limit`),
        one short transaction per batch."""
        return await self._maintenance.purge_completed(cutoff_ms, batch_size, limit)

    async def count_completed_before(self, cutoff_ms: int) -> int:
        return await self._maintenance.count_completed_before(cutoff_ms)

    async def count_traces_by_status(self) -> dict[TraceStatus, int]:
        return await self._maintenance.count_traces_by_status()

    async def delete(self, trace_id: str) -> bool:
        rules.validate_id("trace_id", trace_id)
        async with self._conn() as conn:
            deleted: int = await conn.fetchval(self._sql.delete_trace, trace_id)
        return deleted > 0

    async def load_many(self, trace_ids: Sequence[str]) -> list[PersistedTrace]:
        return await self._maintenance.load_many(trace_ids)

    async def import_trace(self, trace: PersistedTrace) -> bool:
        return await self._maintenance.import_trace(trace)

    async def list_lease_tokens(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[LeaseToken]:
        return await self._leases.list_tokens(after, limit)

    async def raise_lease_token(self, trace_id: str, token: int) -> None:
        await self._leases.raise_token(trace_id, token)

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
