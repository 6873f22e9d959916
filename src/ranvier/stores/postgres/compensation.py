"""Compensation idempotency keys in `<prefix>_compensation_idempotency`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from ranvier import rules
from ranvier.model import CompensationRecord, CompensationState
from ranvier.stores.postgres.connection import Connections, checkout
from ranvier.stores.postgres.rows import check_times
from ranvier.stores.postgres.sql import Statements

PURGE_BATCH_SIZE = 1000


def _record(row: Any) -> CompensationRecord:
    return CompensationRecord(
        key=row["idempotency_key"],
        state=CompensationState(row["state"]),
        claimed_at_ms=row["claimed_at_ms"],
        compensated_at_ms=row["compensated_at_ms"],
    )


class PostgresCompensationIdempotencyStore:
    """Claims and completions of compensation keys; times from the server's clock."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        sql: Statements,
        *,
        acquire_timeout: float,
        connections: Connections | None = None,
    ) -> None:
        self._pool = pool
        self._sql = sql
        self._acquire_timeout = acquire_timeout
        self._connections = connections

    @asynccontextmanager
    async def _conn(self) -> AsyncIterator[Any]:
        if self._connections is not None:  # the store's: shares its kept connections
            async with self._connections.checkout() as conn:
                yield conn
            return
        async with checkout(self._pool, self._acquire_timeout) as conn:
            yield conn

    async def claim(self, key: str) -> bool:
        rules.validate_id("compensation key", key)
        async with self._conn() as conn:
            return await conn.fetchval(self._sql.claim, key) is not None

    async def mark_compensated(self, key: str) -> None:
        rules.validate_id("compensation key", key)
        async with self._conn() as conn:
            await conn.execute(self._sql.mark_compensated, key)

    async def was_compensated(self, key: str) -> bool:
        record = await self.get(key)
        return record is not None and record.state is CompensationState.COMPENSATED

    async def get(self, key: str) -> CompensationRecord | None:
        rules.validate_id("compensation key", key)
        async with self._conn() as conn:
            row = await conn.fetchrow(self._sql.get_compensation, key)
        return None if row is None else _record(row)

    async def release(self, key: str) -> bool:
        rules.validate_id("compensation key", key)
        async with self._conn() as conn:
            return await conn.fetchval(self._sql.release_compensation, key) is not None

    async def list_unfinished(self, *, limit: int = 100) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        async with self._conn() as conn:
            rows = await conn.fetch(self._sql.list_unfinished, limit)
        return [_record(row) for row in rows]

    async def list_records(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        if after is not None:
            rules.validate_id("after", after)
        async with self._conn() as conn:
            rows = await conn.fetch(self._sql.list_records, after or "", limit)
        return [_record(row) for row in rows]

    async def import_record(self, record: CompensationRecord) -> bool:
        record = rules.validate_record(record)
        check_times(claimed_at_ms=record.claimed_at_ms, compensated_at_ms=record.compensated_at_ms)
        if rules.merged_record(await self.get(record.key), record) is None:
            return False
        async with self._conn() as conn:  # IMPORT_RECORD holds the rule against a race
            written = await conn.fetchval(
                self._sql.import_record,
                record.key,
                record.state.value,
                record.claimed_at_ms,
                record.compensated_at_ms,
            )
        return written is not None

    async def count_older_than_ms(self, cutoff_ms: int) -> int:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        async with self._conn() as conn:
            count: int = await conn.fetchval(self._sql.count_compensations, cutoff_ms)
        return count

    async def purge_older_than_ms(self, cutoff_ms: int) -> int:
        """Delete keys compensated before `cutoff_ms`, a bounded batch per transaction; an
        unfinished claim stays (its hook could otherwise run a second time)."""
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        total = 0
        while True:
            async with self._conn() as conn:
                purged: int = await conn.fetchval(
                    self._sql.purge_compensations, cutoff_ms, PURGE_BATCH_SIZE
                )
            total += purged
            if purged < PURGE_BATCH_SIZE:
                return total
