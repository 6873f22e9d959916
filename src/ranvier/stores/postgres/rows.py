"""Between PostgreSQL rows and ranvier's value objects, with the rules of `append`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import orjson

from ranvier import rules
from ranvier.errors import InvalidInput, RanvierError
from ranvier.model import (
    CompletionState,
    ForkOrigin,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceSummary,
)
from ranvier.stores.postgres.batch import RETRY, Result
from ranvier.stores.postgres.sql import MAX_TIME_MS

Pending = tuple[rules.PreparedEnvelope, int | None]
"""An append waiting for group commit: the prepared envelope and its fencing token."""


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


_Fragment = orjson.Fragment
_dumps = orjson.dumps


def append_document(batch: Sequence[Pending]) -> tuple[str, list[str]]:
    """APPEND's parameters: the batch as one JSON array (`x` is the envelope's 1-based
    index), then the ids of the traces whose envelope carries a fence (their lease rows
    are locked). Raises orjson.JSONEncodeError for an int beyond 64 bits."""
    rows = []
    fenced = []
    for x, (prepared, fence) in enumerate(batch, 1):
        e = prepared.envelope
        data = prepared.payload_json
        rows.append(
            {
                "t": e.trace_id,
                "c": e.circuit,
                "v": e.schematic_version,
                "s": e.step,
                "k": e.outcome_kind.value,
                "n": e.node_id,
                "ts": e.timestamp_ms,
                "h": e.payload_hash,
                "p": None if data is None else _Fragment(data),
                "f": fence,
                "x": x,
            }
        )
        if fence is not None:
            fenced.append(e.trace_id)
    return _dumps(rows).decode(), fenced


def complete_document(batch: Sequence[tuple[str, str, int | None]]) -> str:
    """COMPLETE_BATCH's parameter: the calls (trace id, completion, fence) as one JSON array
    (`x` is the call's 1-based index). Raises orjson.JSONEncodeError for an int beyond 64
    bits."""
    rows = [{"t": t, "s": s, "f": f, "x": x} for x, (t, s, f) in enumerate(batch, 1)]
    return _dumps(rows).decode()


def append_one_arguments(pending: Pending) -> tuple[Any, ...]:
    """APPEND_ONE's parameters, in the order of its `$1` .. `$10`."""
    prepared, fence = pending
    e = prepared.envelope
    data = prepared.payload_json
    return (
        e.trace_id,
        e.circuit,
        e.schematic_version,
        e.step,
        e.outcome_kind.value,
        e.node_id,
        e.timestamp_ms,
        e.payload_hash,
        None if data is None else data.decode(),
        fence,
    )


def append_result(pending: Pending, row: Any, *, written: bool) -> Result:
    """What one row of APPEND means: written, an identical retry, a rule's error, or retry.

    The statement wrote the row only if every check passed; when it did not, the rules
    decide on the state it returned. A row neither written nor explained by the returned
    state raced another writer of the same trace: it is run again on a fresh snapshot.
    """
    if written:
        return None
    prepared, fence = pending
    env = prepared.envelope
    try:
        rules.check_fence(env.trace_id, fence, row["token"], row["expires_at_ms"], row["now_ms"])
        if row["found"]:
            rules.check_circuit(row["circuit"], env)
            rules.check_open(env.trace_id, row["completion"])
            if row["old"] is not None:
                kind, node_id, payload_hash = row["old"]
                rules.check_reappend(kind, node_id, payload_hash, env)
                return None  # an identical retry: nothing to write
    except RanvierError as exc:
        return exc
    return RETRY


_KINDS = {kind.value: kind for kind in OutcomeKind}
_new = object.__new__
_SETTERS = tuple(PersistenceEnvelope.__dict__[f.name].__set__ for f in fields(PersistenceEnvelope))
"""The slots' setters, in field order: building 1,000 loaded envelopes through them takes
~1 ms against ~2.7 ms through the frozen dataclass's __init__ (stored rows were validated
when they were written, so there is nothing to check)."""


def _envelopes(trace_id: str, circuit: str, row: Any) -> tuple[list[Any], list[Any]]:
    """The live and the superseded events of LOAD's row."""
    live: list[Any] = []
    superseded: list[Any] = []
    if row["steps"] is None:  # no events
        return live, superseded
    set_trace, set_circuit, set_version, set_step, set_kind, set_node, set_ts, set_hash, set_p = (
        _SETTERS
    )
    kinds, loads, new, cls = _KINDS, orjson.loads, _new, PersistenceEnvelope
    for generation, step, version, kind, node_id, ts, payload_hash, payload in zip(
        row["generations"],
        row["steps"],
        row["versions"],
        row["kinds"],
        row["node_ids"],
        row["timestamps"],
        row["hashes"],
        row["payloads"],
        strict=True,
    ):
        envelope = new(cls)
        set_trace(envelope, trace_id)
        set_circuit(envelope, circuit)
        set_version(envelope, version)
        set_step(envelope, step)
        set_kind(envelope, kinds[kind])
        set_node(envelope, node_id)
        set_ts(envelope, ts)
        set_hash(envelope, payload_hash)
        set_p(envelope, None if payload is None else loads(payload))
        (superseded if generation else live).append(envelope)
    return live, superseded


def trace_from_row(trace_id: str, row: Any) -> PersistedTrace:
    """A trace from LOAD's row."""
    circuit = row["circuit"]
    live, superseded = _envelopes(trace_id, circuit, row)
    raw = orjson.loads(row["interventions"]) if row["interventions"] else ()
    interventions = tuple(
        Intervention(target_node=node, timestamp_ms=ts, payload_override=override)
        for node, ts, override in raw
    )
    completion = row["completion"]
    return PersistedTrace(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=row["schematic_version"],
        events=tuple(live),
        interventions=interventions,
        resumed_from_step=row["resumed_from_step"],
        completion=None if completion is None else CompletionState(completion),
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
        completed_at_ms=row["completed_at_ms"],
        superseded_events=tuple(superseded),
        input=rules.decode_payload(row["input"]),
        attempts=row["attempts"],
        forked_from=fork_origin(row["forked_from"], row["forked_at_step"]),
    )


def fork_origin(trace_id: str | None, step: int | None) -> ForkOrigin | None:
    """`forked_from` from its two columns (both set or both NULL)."""
    return None if trace_id is None or step is None else ForkOrigin(trace_id=trace_id, step=step)


def fork_columns(origin: ForkOrigin | None) -> tuple[str | None, int | None]:
    """The two columns of `forked_from`."""
    return (None, None) if origin is None else (origin.trace_id, origin.step)


def summary_from_row(row: Any) -> TraceSummary:
    completion = row["completion"]
    return TraceSummary(
        trace_id=row["trace_id"],
        circuit=row["circuit"],
        schematic_version=row["schematic_version"],
        status=rules.trace_status(completion, row["lease_live"]),
        completion=None if completion is None else CompletionState(completion),
        last_step=row["last_step"],
        event_count=row["event_count"],
        resumed_from_step=row["resumed_from_step"],
        created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"],
        completed_at_ms=row["completed_at_ms"],
        attempts=row["attempts"],
    )


def event_columns(
    events: Sequence[rules.PreparedEnvelope], superseded: Sequence[rules.PreparedEnvelope]
) -> tuple[int, list[list[Any]]]:
    """IMPORT_EVENTS' array parameters, and the epoch the restored trace is at.

    Superseded events are numbered into generations 1, 2, ... so that a new generation
    starts wherever the step order restarts: loading them back gives the same order.
    """
    rows: list[tuple[int, rules.PreparedEnvelope]] = [(0, p) for p in events]
    generation, previous = 0, None
    for p in superseded:
        if previous is None or p.envelope.step <= previous:
            generation += 1
        previous = p.envelope.step
        rows.append((generation, p))
    columns: list[list[Any]] = [[] for _ in range(8)]
    for gen, p in rows:
        e = p.envelope
        values = (
            gen,
            e.step,
            e.schematic_version,
            e.outcome_kind.value,
            e.node_id,
            e.timestamp_ms,
            e.payload_hash,
            _text(p.payload_json),
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return generation, columns


def intervention_columns(
    interventions: Sequence[tuple[Intervention, bytes | None]],
) -> list[list[Any]]:
    return [
        list(range(1, len(interventions) + 1)),
        [i.target_node for i, _ in interventions],
        [i.timestamp_ms for i, _ in interventions],
        [_text(data) for _, data in interventions],
    ]


def check_times(**times: int | None) -> None:
    """`InvalidInput` for a time a `timestamptz` column cannot hold (restores, the ledger):
    the rules take any 64-bit time, PostgreSQL's timestamps end in the year 294276."""
    for name, value in times.items():
        if value is not None and value > MAX_TIME_MS:
            raise InvalidInput(
                f"{name} {value} is past the last time PostgreSQL stores ({MAX_TIME_MS} ms, "
                "the year 294276)"
            )
