"""The flushes of the store's group commits: a batch of appends, or of completes, as one
statement and one commit (`postgres.batch.GroupCommit` forms the batches).

A batch of appends is one APPEND statement; a lone append is APPEND_ONE. Each caller
gets its own outcome: written, an identical retry, a rule's error, or RETRY (a race
with another process: it joins the next batch). Completes go the same way through
COMPLETE_BATCH and COMPLETE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ranvier import rules
from ranvier.errors import InvalidInput, RanvierError, TraceNotFound
from ranvier.model import CompletionState
from ranvier.stores.postgres.batch import RETRY, Result
from ranvier.stores.postgres.connection import RETRYABLE, Connections
from ranvier.stores.postgres.rows import (
    Pending,
    append_document,
    append_one_arguments,
    append_result,
    complete_document,
)
from ranvier.stores.postgres.sql import Statements

Completion = tuple[str, str, int | None]
"""A `complete` call waiting for its batch: trace id, completion value, fence."""


def check_fence_value(fence: object) -> int | None:
    """The fencing token an append or complete carries: None, or an int of 64 bits."""
    if fence is None:
        return None
    if type(fence) is int and -_MAX <= fence <= _MAX:
        return fence
    raise InvalidInput(
        f"fence must be a lease's token (an int, at most 2**63 - 1) or None, got {fence!r}"
    )


_MAX = rules.MAX_INT


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


class Writes:
    """`appends` and `completes`: the flush functions of the store's two group commits."""

    def __init__(self, sql: Statements, connections: Connections) -> None:
        self._sql = sql
        self._connections = connections

    async def appends(self, batch: Sequence[Pending]) -> list[Result]:
        """One APPEND statement for the batch: one transaction, one round trip."""
        if len(batch) == 1:
            return [await self._append_one(batch[0])]
        try:
            document, fenced = append_document(batch)
        except (TypeError, ValueError):  # a value JSON cannot carry: let its own append fail
            return await self._appends_each(batch)
        try:
            async with self._connections.checkout() as conn:
                rows = await conn.fetch(self._sql.append, document, fenced)
        except RETRYABLE:  # another process locked the same traces in another order
            return [RETRY] * len(batch)
        except InvalidInput:  # a value the database refused: nothing was written
            return await self._appends_each(batch)
        results: list[Result] = [None] * len(batch)  # what comes back was not written
        for row in rows:
            index = row["idx"] - 1
            results[index] = append_result(batch[index], row, written=False)
        return results

    async def _append_one(self, pending: Pending) -> Result:
        arguments = append_one_arguments(pending)
        if pending[1] is None:
            sql, arguments = self._sql.append_one, arguments[:9]
        else:
            sql = self._sql.append_one_fenced
        try:
            async with self._connections.checkout() as conn:
                row = await conn.fetchrow(sql, *arguments)
        except RETRYABLE:
            return RETRY
        return append_result(pending, row, written=row["written"])

    async def _appends_each(self, batch: Sequence[Pending]) -> list[Result]:
        """The batch one envelope at a time, so that a bad value fails only its append."""
        results: list[Result] = []
        for pending in batch:
            try:
                results.append(await self._append_one(pending))
            except (OverflowError, TypeError, ValueError) as exc:  # InvalidInput too
                results.append(exc)
        return results

    async def completes(self, batch: Sequence[Completion]) -> list[Result]:
        """COMPLETE for one call, COMPLETE_BATCH for more: one statement, one commit."""
        if len(batch) > 1:
            try:
                document: str | None = complete_document(batch)
            except (TypeError, ValueError):  # a fence JSON cannot carry: its own call fails
                document = None
            if document is not None:
                try:
                    async with self._connections.checkout() as conn:
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
                async with self._connections.checkout() as conn:  # checks and update, atomic
                    row = await conn.fetchrow(self._sql.complete, *call)
            except RETRYABLE:
                results.append(RETRY)
                continue
            except (InvalidInput, OverflowError) as exc:
                results.append(exc)
                continue
            results.append(_completion_result(call, row))
        return results
