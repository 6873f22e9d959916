"""Write jobs of the SQLite adapter: each runs inside the writer's transaction.

Every job reads what the rules need, lets `rules` decide, and only then writes, so a
rejected job has written nothing and the rest of its batch commits (the writer checks
this). Times come from the store clock: this process's clock (`time.time`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from ranvier import rules
from ranvier.errors import TraceNotFound
from ranvier.model import (
    CompletionState,
    Intervention,
    Lease,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    now_ms,
)
from ranvier.stores.sqlite import sql
from ranvier.stores.sqlite.rows import load_trace


def _state(conn: sqlite3.Connection, trace_id: str) -> Any:
    """The trace's state row (columns of SELECT_STATE); `TraceNotFound` if none."""
    row = conn.execute(sql.SELECT_STATE, (trace_id,)).fetchone()
    if row is None:
        raise TraceNotFound(f"no trace is stored under {trace_id!r}")
    return row


def check_fence(conn: sqlite3.Connection, trace_id: str, fence: int | None, now: int) -> None:
    if fence is not None:
        row = conn.execute(sql.SELECT_LEASE, (trace_id,)).fetchone()
        token, expires = (None, None) if row is None else (row[1], row[2])
        rules.check_fence(trace_id, fence, token, expires, now)


def append_checked(
    conn: sqlite3.Connection,
    env: PersistenceEnvelope,
    payload: str | None,
    fence: int | None,
    now: int,
) -> None:
    """An append that APPEND_FAST did not take: every rule checked here, in order."""
    tid = env.trace_id
    check_fence(conn, tid, fence, now)
    row = conn.execute(sql.APPEND_PRECHECK, (tid,)).fetchone()
    version: str | None = None
    if row is None:
        conn.execute(sql.INSERT_STATE, (tid, env.circuit, env.schematic_version, now, now))
        last = None
    else:
        circuit, trace_version, completion, last = row
        rules.check_circuit(circuit, env)
        rules.check_open(tid, completion)
        if last is not None and env.step <= last:
            stored = conn.execute(sql.SELECT_LIVE_EVENT, (tid, env.step)).fetchone()
            if stored is not None:
                rules.check_reappend(stored[0], stored[1], stored[2], env)
                return
        if env.schematic_version != trace_version:
            version = env.schematic_version
    conn.execute(
        sql.INSERT_EVENT,
        (
            tid,
            env.step,
            env.outcome_kind.value,
            env.node_id,
            env.timestamp_ms,
            env.payload_hash,
            payload,
            version,
            now,
        ),
    )
    if last is not None and env.step < last:
        conn.execute(sql.TOUCH_STATE, (now, tid))  # not the newest step: record the time


def resume(
    conn: sqlite3.Connection, trace_id: str, from_step: int, fence: int | None
) -> ResumeCursor:
    state = _state(conn, trace_id)
    rules.check_open(trace_id, state[2])
    last = conn.execute(sql.LAST_LIVE_STEP, (trace_id,)).fetchone()[0]
    step = rules.check_resume_step(trace_id, from_step, last)
    now = now_ms()
    check_fence(conn, trace_id, fence, now)
    rewinds = int(state[7])
    if conn.execute(sql.SUPERSEDE_AFTER, (rewinds + 1, trace_id, step)).rowcount:
        rewinds += 1
    conn.execute(sql.RECORD_RESUME, (step, rewinds, now, trace_id))
    return ResumeCursor(trace_id=trace_id, next_step=step + 1)


def complete(
    conn: sqlite3.Connection, trace_id: str, state: CompletionState, fence: int | None
) -> None:
    """Completion by the rules; with `fence`, its lease is released in the same transaction.

    Fenced, COMPLETE_FAST is tried first (the common case: open trace, live fence): it
    and the release are the whole job. The rules order: no trace, the completion change
    (the same state again is a no-op whatever the fence), then the fence.
    """
    if fence is not None:
        fast = conn.execute(sql.COMPLETE_FAST, (trace_id, state.value, fence, now_ms()))
        if fast.rowcount:
            conn.execute(sql.RELEASE_FENCED_LEASE, (trace_id, fence))
            return
    current = _state(conn, trace_id)[2]
    if not rules.completion_change(trace_id, current, state):
        return
    now = now_ms()
    check_fence(conn, trace_id, fence, now)
    conn.execute(sql.RECORD_COMPLETION, (state.value, now, now, trace_id))
    if fence is not None:
        conn.execute(sql.RELEASE_FENCED_LEASE, (trace_id, fence))


def save_intervention(
    conn: sqlite3.Connection, trace_id: str, intervention: Intervention, data: str | None
) -> None:
    rules.check_open(trace_id, _state(conn, trace_id)[2])
    now = now_ms()
    conn.execute(
        sql.INSERT_INTERVENTION,
        (trace_id, trace_id, intervention.target_node, data, intervention.timestamp_ms, now),
    )
    conn.execute(sql.TOUCH_STATE_NOW, (now, trace_id))


def delete(conn: sqlite3.Connection, trace_id: str) -> bool:
    count = 0
    for statement in sql.DELETE_TRACE:
        count = conn.execute(statement, (trace_id,)).rowcount
    return count > 0


def purge_batch(conn: sqlite3.Connection, cutoff_ms: int, batch_size: int) -> int:
    """Delete up to `batch_size` traces completed before the cutoff, the earliest
    completed first, with all their rows; how many."""
    ids = [(row[0],) for row in conn.execute(sql.PURGE_BATCH, (cutoff_ms, batch_size))]
    for statement in sql.DELETE_TRACE:
        conn.executemany(statement, ids)
    return len(ids)


# --- import (restore) ---------------------------------------------------------------


def _event_row(
    trace: PersistedTrace, superseded: int, env: PersistenceEnvelope, payload: str | None
) -> tuple[object, ...]:
    version = None if env.schematic_version == trace.schematic_version else env.schematic_version
    return (
        trace.trace_id,
        superseded,
        env.step,
        env.outcome_kind.value,
        env.node_id,
        env.timestamp_ms,
        env.payload_hash,
        payload,
        version,
        trace.updated_at_ms,
    )


def import_rows(
    trace: PersistedTrace, events: Sequence[tuple[PersistenceEnvelope, str | None]]
) -> tuple[list[tuple[object, ...]], int]:
    """Event rows of a trace to restore, and its rewind count.

    Live events come first in `events`; superseded ones follow in their order, a new
    rewind starting wherever the step does not grow.
    """
    live = len(trace.events)
    rows = [_event_row(trace, 0, env, data) for env, data in events[:live]]
    rewinds, previous = 0, None
    for env, data in events[live:]:
        if previous is None or env.step <= previous:
            rewinds += 1
        previous = env.step
        rows.append(_event_row(trace, rewinds, env, data))
    return rows, rewinds


def import_trace(
    conn: sqlite3.Connection,
    trace: PersistedTrace,
    input_text: str | None,
    event_rows: list[tuple[object, ...]],
    rewinds: int,
    interventions: list[tuple[Intervention, str | None]],
) -> bool:
    """Write the whole trace, unless one is stored under its id: then False if it is the
    same (by `rules.trace_digest`: input, attempts and fork origin included), else
    `RestoreConflict`. `input_text`: the trace's input as canonical JSON text."""
    if not rules.restore_is_new(load_trace(conn, trace.trace_id), trace):
        return False
    completion = None if trace.completion is None else CompletionState(trace.completion).value
    origin = trace.forked_from
    conn.execute(
        sql.IMPORT_STATE,
        (
            trace.trace_id,
            trace.circuit,
            trace.schematic_version,
            completion,
            trace.completed_at_ms,
            trace.resumed_from_step,
            rewinds,
            trace.created_at_ms,
            trace.updated_at_ms,
            input_text,
            trace.attempts,
            None if origin is None else origin.trace_id,
            None if origin is None else origin.step,
        ),
    )
    conn.executemany(sql.IMPORT_EVENT, event_rows)
    conn.executemany(
        sql.IMPORT_INTERVENTION,
        [
            (trace.trace_id, seq, i.target_node, data, i.timestamp_ms, trace.updated_at_ms)
            for seq, (i, data) in enumerate(interventions, start=1)
        ],
    )
    return True


# --- leases -------------------------------------------------------------------------


StartRow = tuple[str, str, str | None]
"""A validated `TraceStart` as START_TRACE takes it: circuit, schematic_version, input
(canonical JSON text, or None)."""


def acquire_lease(
    conn: sqlite3.Connection, trace_id: str, holder: str, ttl_ms: int, start: StartRow | None
) -> Lease | None:
    """The lease, and in the same transaction the attempt it counts: a stored unfinished
    trace's `attempts` grows by one; with `start`, a trace not stored yet is created."""
    now = now_ms()
    row = conn.execute(sql.SELECT_LEASE, (trace_id,)).fetchone()
    if row is not None and rules.lease_is_live(row[2], now):
        return None
    token = 1 if row is None else row[1] + 1
    conn.execute(sql.UPSERT_LEASE, (trace_id, holder, token, now + ttl_ms))
    if start is None:
        conn.execute(sql.COUNT_ATTEMPT, (trace_id,))
    else:
        conn.execute(sql.START_TRACE, (trace_id, *start, now))
    return Lease(trace_id=trace_id, holder=holder, token=token, expires_at_ms=now + ttl_ms)


def renew_lease(conn: sqlite3.Connection, lease: Lease, ttl_ms: int) -> Lease:
    now = now_ms()
    check_fence(conn, lease.trace_id, lease.token, now)
    conn.execute(sql.RENEW_LEASE, (now + ttl_ms, lease.trace_id))
    return Lease(
        trace_id=lease.trace_id, holder=lease.holder, token=lease.token, expires_at_ms=now + ttl_ms
    )


def release_lease(conn: sqlite3.Connection, lease: Lease) -> bool:
    row = conn.execute(sql.SELECT_LEASE, (lease.trace_id,)).fetchone()
    if row is None or row[1] != lease.token or row[0] is None:
        return False
    conn.execute(sql.RELEASE_LEASE, (lease.trace_id,))
    return rules.lease_is_live(row[2], now_ms())


def raise_lease_token(conn: sqlite3.Connection, trace_id: str, token: int) -> None:
    conn.execute(sql.RAISE_LEASE_TOKEN, (trace_id, token))
