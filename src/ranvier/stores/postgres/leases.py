"""Leases on PostgreSQL, with the durable start that comes with an acquisition.

Also the fencing tokens that backups carry (`list_tokens`, `raise_token`).

`acquire_lease` calls of concurrent runs share one statement and one commit, as appends
do (`postgres.batch.GroupCommit`, one call per trace per batch): `ACQUIRE_LEASE` for a
lone call, `ACQUIRE_LEASE_BATCH` for more. In the same statement, each lease acquired
counts an attempt of its stored, unfinished trace, and a call with a `TraceStart`
creates its trace when none is stored: no round trip beyond the lease's own. Those
statements lock the state rows before the lease rows, in key order, as the append and
complete statements do, so no two of them deadlock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from ranvier import rules
from ranvier.errors import LeaseLost
from ranvier.model import Lease, LeaseToken, TraceStart
from ranvier.stores.postgres.batch import RETRY, GroupCommit, Result
from ranvier.stores.postgres.connection import RETRYABLE, Connections
from ranvier.stores.postgres.sql import Statements


@dataclass(slots=True)
class Acquisition:
    """An `acquire_lease` call waiting for its batch; its flush sets `lease` if acquired."""

    trace_id: str
    holder: str
    ttl_ms: int
    start: rules.PreparedStart | None = None
    lease: Lease | None = None

    def arguments(self) -> tuple[Any, ...]:
        """ACQUIRE_LEASE's parameters, in the order of its `$1` .. `$6`."""
        begin = self.start
        if begin is None:
            return (self.trace_id, self.holder, self.ttl_ms, None, None, None)
        data = begin.input_json
        return (
            self.trace_id,
            self.holder,
            self.ttl_ms,
            begin.start.circuit,
            begin.start.schematic_version,
            None if data is None else data.decode(),
        )


_Fragment = orjson.Fragment


def document(batch: Sequence[Acquisition]) -> str:
    """ACQUIRE_LEASE_BATCH's parameter: the calls as one JSON array; a start's input goes
    in as its canonical JSON (`orjson.Fragment`), the server keeping its exact text."""
    rows: list[dict[str, Any]] = []
    for call in batch:
        row: dict[str, Any] = {"t": call.trace_id, "h": call.holder, "ttl": call.ttl_ms}
        begin = call.start
        if begin is not None:
            data = begin.input_json
            row["c"] = begin.start.circuit
            row["v"] = begin.start.schematic_version
            row["p"] = None if data is None else _Fragment(data)
        rows.append(row)
    return orjson.dumps(rows).decode()


class PostgresLeases:
    """`acquire_lease`, `renew_lease`, `release_lease` and `get_lease` of the store."""

    def __init__(
        self,
        sql: Statements,
        connections: Connections,
        *,
        max_payload_bytes: int,
        max_batch: int,
        max_inflight: int,
    ) -> None:
        self._sql = sql
        self._connections = connections
        self._max_payload_bytes = max_payload_bytes
        self.acquirer: GroupCommit[Acquisition] = GroupCommit(
            self.flush, max_batch=max_batch, max_inflight=max_inflight
        )

    async def acquire(
        self, trace_id: str, holder: str, ttl_ms: int, start: TraceStart | None
    ) -> Lease | None:
        ttl_ms = rules.validate_lease_request(trace_id, holder, ttl_ms)
        begin = rules.prepare_start(start, max_payload_bytes=self._max_payload_bytes)
        call = Acquisition(trace_id, holder, ttl_ms, begin)
        await self.acquirer.submit(trace_id, call)
        return call.lease

    async def flush(self, batch: Sequence[Acquisition]) -> list[Result]:
        """ACQUIRE_LEASE for one call, ACQUIRE_LEASE_BATCH for more: one statement, one
        commit; each call's `lease` is set when it acquired one."""
        try:
            async with self._connections.checkout() as conn:
                if len(batch) == 1:
                    call = batch[0]
                    row = await conn.fetchrow(self._sql.acquire_lease, *call.arguments())
                    rows = [] if row is None else [{**row, "trace_id": call.trace_id}]
                else:
                    rows = await conn.fetch(self._sql.acquire_lease_batch, document(batch))
        except RETRYABLE:  # another process locked the same traces in another order
            return [RETRY] * len(batch)
        acquired = {row["trace_id"]: row for row in rows}
        for call in batch:
            row = acquired.get(call.trace_id)
            if row is not None:
                call.lease = Lease(
                    trace_id=call.trace_id,
                    holder=call.holder,
                    token=row["token"],
                    expires_at_ms=row["expires_at_ms"],
                )
        return [None] * len(batch)

    async def renew(self, lease: Lease, ttl_ms: int) -> Lease:
        ttl_ms = rules.validate_lease_request(lease.trace_id, lease.holder, ttl_ms)
        async with self._connections.checkout() as conn:
            row = await conn.fetchrow(self._sql.renew_lease, lease.trace_id, lease.token, ttl_ms)
        if row["renewed_ms"] is not None:
            return replace(lease, expires_at_ms=row["renewed_ms"])
        rules.check_fence(
            lease.trace_id, lease.token, row["token"], row["expires_at_ms"], row["now_ms"]
        )
        raise LeaseLost(f"the lease on trace {lease.trace_id!r} was released")

    async def release(self, lease: Lease) -> bool:
        rules.validate_id("trace_id", lease.trace_id)
        async with self._connections.checkout() as conn:
            live = await conn.fetchval(self._sql.release_lease, lease.trace_id, lease.token)
        return bool(live)

    async def get(self, trace_id: str) -> Lease | None:
        rules.validate_id("trace_id", trace_id)
        async with self._connections.checkout() as conn:
            row = await conn.fetchrow(self._sql.get_lease, trace_id)
        if row is None:
            return None
        return Lease(
            trace_id=trace_id,
            holder=row["holder"],
            token=row["token"],
            expires_at_ms=row["expires_at_ms"],
        )

    async def list_tokens(self, after: str | None, limit: int) -> list[LeaseToken]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        if after is not None:
            rules.validate_id("after", after)
        async with self._connections.checkout() as conn:
            rows = await conn.fetch(self._sql.list_lease_tokens, after or "", limit)
        return [LeaseToken(trace_id=row["trace_id"], token=row["token"]) for row in rows]

    async def raise_token(self, trace_id: str, token: int) -> None:
        rules.validate_token(LeaseToken(trace_id=trace_id, token=token))
        async with self._connections.checkout() as conn:
            await conn.execute(self._sql.raise_lease_token, trace_id, token)

    async def close(self) -> None:
        await self.acquirer.close()
