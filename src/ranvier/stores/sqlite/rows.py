"""Reads of the SQLite adapter: rows to value objects (run on the reader thread).

Functions here take a connection and run no transaction control of their own, so a
write job can call them inside its transaction; `in_snapshot` gives the reader one
consistent WAL snapshot across several statements.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from ranvier import rules
from ranvier.model import (
    CompletionState,
    ForkOrigin,
    Intervention,
    Lease,
    LeaseToken,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TracePage,
    TraceStatus,
    TraceSummary,
    now_ms,
)
from ranvier.stores.sqlite import sql

T = TypeVar("T")

_KINDS = {kind.value: kind for kind in OutcomeKind}
_STATES = {state.value: state for state in CompletionState}
MAX_INTEGER = (1 << 63) - 1
"""SQLite's largest INTEGER (the driver refuses larger ints): a listing's bound beyond it
is clamped to it, which no stored time or attempt count reaches, so it filters the same."""


def in_snapshot(work: Callable[[sqlite3.Connection], T]) -> Callable[[sqlite3.Connection], T]:
    """Wrap a read so all its statements see one snapshot."""

    def run(conn: sqlite3.Connection) -> T:
        conn.execute("BEGIN")
        try:
            return work(conn)
        finally:
            conn.execute("COMMIT")

    return run


def _completion(value: str | None) -> CompletionState | None:
    return None if value is None else _STATES[value]


def load_trace(conn: sqlite3.Connection, trace_id: str) -> PersistedTrace | None:
    state = conn.execute(sql.SELECT_STATE, (trace_id,)).fetchone()
    if state is None:
        return None
    circuit, version, completion, completed_at, resumed, created, updated = state[:7]
    input_text, attempts, forked_from, forked_at_step = state[8:]
    live: list[PersistenceEnvelope] = []
    superseded: list[PersistenceEnvelope] = []
    last_recorded = 0
    decode = rules.decode_payload
    for row in conn.execute(sql.SELECT_EVENTS, (trace_id,)):
        envelope = PersistenceEnvelope(
            trace_id=trace_id,
            circuit=circuit,
            schematic_version=row[7] or version,
            step=row[1],
            outcome_kind=_KINDS[row[2]],
            node_id=row[3],
            timestamp_ms=row[4],
            payload_hash=row[5],
            payload=decode(row[6]),
        )
        if row[0] == 0:
            live.append(envelope)
            last_recorded = row[8]  # ordered by step: ends at the newest step's
        else:
            superseded.append(envelope)
    interventions = tuple(
        Intervention(target_node=target, payload_override=decode(data), timestamp_ms=ts)
        for target, data, ts in conn.execute(sql.SELECT_INTERVENTIONS, (trace_id,))
    )
    return PersistedTrace(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=version,
        events=tuple(live),
        interventions=interventions,
        resumed_from_step=resumed,
        completion=_completion(completion),
        created_at_ms=created,
        updated_at_ms=max(updated, last_recorded),
        completed_at_ms=completed_at,
        superseded_events=tuple(superseded),
        input=decode(input_text),
        attempts=attempts,
        forked_from=None
        if forked_from is None
        else ForkOrigin(trace_id=forked_from, step=forked_at_step),
    )


def _status_filter(status: TraceStatus, now: int) -> tuple[str, list[Any]]:
    if status is TraceStatus.RUNNING:
        return sql.FILTER_RUNNING, [now]
    if status is TraceStatus.INTERRUPTED:
        return sql.FILTER_INTERRUPTED, [now]
    if status is TraceStatus.COMPLETED:
        return sql.FILTER_COMPLETED, []
    return sql.FILTER_COMPLETION_IS, [rules.COMPLETION_OF_STATUS[status].value]


def _clamp(bound: int | None) -> int | None:
    return bound if bound is None or bound <= MAX_INTEGER else MAX_INTEGER


def list_query(
    status: TraceStatus | None,
    circuit: str | None,
    updated_before_ms: int | None,
    min_attempts: int | None,
    after: str | None,
    limit: int,
    now: int,
) -> tuple[str, list[Any]]:
    """The page's SELECT over the traces view, built from the named fragments."""
    where: list[str] = []
    params: list[Any] = []
    for fragment, value in (
        (sql.FILTER_AFTER, after),
        (sql.FILTER_CIRCUIT, circuit),
        (sql.FILTER_UPDATED_BEFORE, _clamp(updated_before_ms)),
        (sql.FILTER_MIN_ATTEMPTS, _clamp(min_attempts)),
    ):
        if value is not None:
            where.append(fragment)
            params.append(value)
    if status is not None:
        fragment, values = _status_filter(status, now)
        where.append(fragment)
        params.extend(values)
    text = sql.LIST_TRACES + (" WHERE " + " AND ".join(where) if where else "")
    return text + sql.LIST_ORDER, [*params, limit]


def list_traces(
    conn: sqlite3.Connection,
    status: TraceStatus | None,
    circuit: str | None,
    updated_before_ms: int | None,
    min_attempts: int | None,
    after: str | None,
    limit: int,
) -> TracePage:
    now = now_ms()
    text, params = list_query(status, circuit, updated_before_ms, min_attempts, after, limit, now)
    rows = conn.execute(text, params).fetchall()
    items: list[TraceSummary] = []
    for row in rows:
        summary = TraceSummary(
            trace_id=row[0],
            circuit=row[1],
            schematic_version=row[2],
            status=rules.trace_status(row[3], rules.lease_is_live(row[10], now)),
            completion=_completion(row[3]),
            last_step=row[4],
            event_count=row[5],
            resumed_from_step=row[6],
            created_at_ms=row[7],
            updated_at_ms=row[8],
            completed_at_ms=row[9],
            attempts=row[11],
        )
        if rules.status_matches(status, summary.status):  # the SQL filter decided; recheck
            items.append(summary)
    cursor = rules.encode_cursor(rows[-1][0]) if len(rows) == limit else None
    return TracePage(items=tuple(items), next_cursor=cursor)


def live_lease(conn: sqlite3.Connection, trace_id: str) -> Lease | None:
    row = conn.execute(sql.SELECT_LEASE, (trace_id,)).fetchone()
    if row is None or row[0] is None or not rules.lease_is_live(row[2], now_ms()):
        return None
    return Lease(trace_id=trace_id, holder=row[0], token=row[1], expires_at_ms=row[2])


def load_traces(conn: sqlite3.Connection, trace_ids: Sequence[str]) -> list[PersistedTrace]:
    """The stored ones among `trace_ids`, in their order (call it `in_snapshot`)."""
    found = (load_trace(conn, trace_id) for trace_id in trace_ids)
    return [trace for trace in found if trace is not None]


def count_by_status(conn: sqlite3.Connection) -> dict[TraceStatus, int]:
    """Every status's count from one statement (one snapshot): see COUNT_BY_COMPLETION."""
    counts: dict[TraceStatus, int] = {}
    unfinished = running = 0
    for completion, count in conn.execute(sql.COUNT_BY_COMPLETION, (now_ms(),)):
        if completion is None:
            unfinished = count
        elif completion == "running":
            running = count
        else:
            counts[rules.trace_status(completion, False)] = count
    counts[TraceStatus.RUNNING] = running
    counts[TraceStatus.INTERRUPTED] = unfinished - running
    return rules.full_counts(counts)


def lease_tokens(conn: sqlite3.Connection, after: str | None, limit: int) -> list[LeaseToken]:
    rows = conn.execute(sql.LIST_LEASE_TOKENS, (after or "", limit))
    return [LeaseToken(trace_id=trace_id, token=token) for trace_id, token in rows]
