"""The SQLite compensation idempotency store: one row per key, beside the traces."""

from __future__ import annotations

import sqlite3
from typing import Any

from ranvier import rules
from ranvier.model import CompensationRecord, CompensationState, now_ms
from ranvier.stores.sqlite import sql
from ranvier.stores.sqlite.writer import SqliteDatabase

_PURGE_BATCH = 1000


def _record(key: str, row: Any) -> CompensationRecord:
    return CompensationRecord(
        key=key, state=CompensationState(row[0]), claimed_at_ms=row[1], compensated_at_ms=row[2]
    )


def _claim(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute(sql.CLAIM_KEY, (key, now_ms())).rowcount == 1


def _mark(conn: sqlite3.Connection, key: str) -> None:
    now = now_ms()
    conn.execute(sql.MARK_COMPENSATED, (key, now, now))


def _release(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute(sql.RELEASE_KEY, (key,)).rowcount == 1


def _purge(conn: sqlite3.Connection, cutoff_ms: int) -> int:
    return conn.execute(sql.PURGE_KEYS, (cutoff_ms, _PURGE_BATCH)).rowcount


def _select(conn: sqlite3.Connection, key: str) -> CompensationRecord | None:
    row = conn.execute(sql.SELECT_KEY, (key,)).fetchone()
    return None if row is None else _record(key, row)


def _import(conn: sqlite3.Connection, record: CompensationRecord) -> bool:
    merged = rules.merged_record(_select(conn, record.key), record)
    if merged is None:
        return False
    row = (merged.key, merged.state.value, merged.claimed_at_ms, merged.compensated_at_ms)
    conn.execute(sql.IMPORT_KEY, row)
    return True


class SqliteCompensationIdempotencyStore:
    """Compensation keys in `ranvier_persistence_compensation_idempotency`.

    Get it from `SqlitePersistenceStore.compensations`: it shares that store's file,
    connections and writer (a claim is one `INSERT ... ON CONFLICT DO NOTHING`, so
    exactly one process wins it).
    """

    def __init__(self, database: SqliteDatabase) -> None:
        self._db = database

    async def claim(self, key: str) -> bool:
        rules.validate_id("compensation key", key)
        return await self._db.submit(lambda conn: _claim(conn, key))

    async def mark_compensated(self, key: str) -> None:
        rules.validate_id("compensation key", key)
        await self._db.submit(lambda conn: _mark(conn, key))

    async def was_compensated(self, key: str) -> bool:
        record = await self.get(key)
        return record is not None and record.state is CompensationState.COMPENSATED

    async def get(self, key: str) -> CompensationRecord | None:
        rules.validate_id("compensation key", key)
        return await self._db.read(lambda conn: _select(conn, key))

    async def release(self, key: str) -> bool:
        rules.validate_id("compensation key", key)
        return await self._db.submit(lambda conn: _release(conn, key))

    async def list_unfinished(self, *, limit: int = 100) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)

        def read(conn: sqlite3.Connection) -> list[CompensationRecord]:
            rows = conn.execute(sql.LIST_UNFINISHED, (limit,)).fetchall()
            return [_record(row[0], row[1:]) for row in rows]

        return await self._db.read(read)

    async def list_records(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[CompensationRecord]:
        if after is not None:
            rules.validate_id("after", after)
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)

        def read(conn: sqlite3.Connection) -> list[CompensationRecord]:
            rows = conn.execute(sql.LIST_KEYS, (after or "", limit)).fetchall()
            return [_record(row[0], row[1:]) for row in rows]

        return await self._db.read(read)

    async def import_record(self, record: CompensationRecord) -> bool:
        """`rules.merged_record` decides, in the write's transaction: never backwards."""
        record = rules.validate_record(record)
        return await self._db.submit(lambda conn: _import(conn, record))

    async def count_older_than_ms(self, cutoff_ms: int) -> int:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        return await self._db.read(
            lambda conn: int(conn.execute(sql.COUNT_KEYS, (cutoff_ms,)).fetchone()[0])
        )

    async def purge_older_than_ms(self, cutoff_ms: int) -> int:
        """Deletes compensated keys only (an unfinished claim stays: its hook must not run
        twice), in batches of 1,000 keys, each its own short transaction."""
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        total = 0
        while True:
            count = await self._db.submit(lambda conn: _purge(conn, cutoff_ms), heavy=True)
            total += count
            if count < _PURGE_BATCH:
                return total
