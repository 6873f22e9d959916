"""What operators and backups ask of the store: counts, purge, batched loads, restore and
`describe`. Counted and filtered in the database, never by loading traces."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from ranvier import rules
from ranvier.model import CompletionState, PersistedTrace, StoreDescription, TraceStatus
from ranvier.stores.postgres.catalog import describe
from ranvier.stores.postgres.connection import Connections
from ranvier.stores.postgres.rows import (
    check_times,
    event_columns,
    fork_columns,
    intervention_columns,
    trace_from_row,
)
from ranvier.stores.postgres.schema import LATEST_VERSION
from ranvier.stores.postgres.sql import Statements, table_names

LOAD_MANY_CHUNK = 500
"""Traces per LOAD_MANY statement: one round trip for a backup's page, bounded rows."""


class Maintenance:
    """The store's operator and backup methods, over its statements and connections."""

    def __init__(
        self,
        sql: Statements,
        connections: Connections,
        *,
        pool: asyncpg.Pool,
        prefix: str,
        url: str | None,
        max_payload_bytes: int,
    ) -> None:
        self._sql = sql
        self._connections = connections
        self._pool = pool
        self._prefix = prefix
        self._url = url
        self._max_payload_bytes = max_payload_bytes

    async def _scan(self, sql: str, *args: Any) -> list[Any]:
        """Run a statement that reads whole tables: the store's sessions price seq scans
        out (`connection.SERVER_SETTINGS`), which would make it walk an index instead."""
        async with self._connections.checkout() as conn, conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = on")
            rows: list[Any] = await conn.fetch(sql, *args)
        return rows

    async def count_traces_by_status(self) -> dict[TraceStatus, int]:
        counts: dict[str, int] = {"running": 0, "unfinished": 0}
        for row in await self._scan(self._sql.count_by_status):
            counts[row["status"]] = counts.get(row["status"], 0) + row["n"]
        running = counts.pop("running")
        unfinished = counts.pop("unfinished")
        statuses = {rules.trace_status(completion, False): n for completion, n in counts.items()}
        statuses[TraceStatus.RUNNING] = running
        statuses[TraceStatus.INTERRUPTED] = unfinished - running
        return rules.full_counts(statuses)

    async def count_completed_before(self, cutoff_ms: int) -> int:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        rows = await self._scan(self._sql.count_completed_before, cutoff_ms)
        count: int = rows[0][0]
        return count

    async def purge_completed(self, cutoff_ms: int, batch_size: int, limit: int | None) -> int:
        """Delete traces completed before `cutoff_ms`, earliest first, one short
        transaction per batch (`FOR UPDATE SKIP LOCKED`), at most `limit`."""
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        rules.validate_positive("batch_size", batch_size, maximum=rules.MAX_BATCH_SIZE)
        if limit is not None:
            rules.validate_positive("limit", limit)
        total = 0
        while True:
            size = batch_size if limit is None else min(batch_size, limit - total)
            async with self._connections.checkout() as conn:
                purged: int = await conn.fetchval(self._sql.purge_batch, cutoff_ms, size)
            total += purged
            if purged < size or total == limit:
                return total

    async def load_many(self, trace_ids: Sequence[str]) -> list[PersistedTrace]:
        ids = [rules.validate_id("trace_id", t) for t in trace_ids]
        found: dict[str, PersistedTrace] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), LOAD_MANY_CHUNK):
            async with self._connections.checkout() as conn:
                rows = await conn.fetch(
                    self._sql.load_many, unique[start : start + LOAD_MANY_CHUNK]
                )
            found.update((row["trace_id"], trace_from_row(row["trace_id"], row)) for row in rows)
        return [found[t] for t in ids if t in found]

    async def import_trace(self, trace: PersistedTrace) -> bool:
        prepared = rules.prepare_trace(trace, max_payload_bytes=self._max_payload_bytes)
        trace = prepared.trace
        check_times(
            created_at_ms=trace.created_at_ms,
            updated_at_ms=trace.updated_at_ms,
            completed_at_ms=trace.completed_at_ms,
        )
        epoch, columns = event_columns(prepared.events, prepared.superseded)
        interventions = list(zip(trace.interventions, prepared.interventions, strict=True))
        async with self._connections.checkout() as conn, conn.transaction():
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
        existing = await self.load_many([trace.trace_id])
        if not existing:  # deleted since: write it after all
            return await self.import_trace(trace)
        return rules.restore_is_new(existing[0], trace)  # False, or RestoreConflict

    async def describe(self) -> StoreDescription:
        async with self._connections.checkout() as conn:
            return await describe(
                conn,
                self._sql,
                table_names(self._prefix),
                url=self._url,
                pool=self._pool,
                latest=LATEST_VERSION,
            )
