"""Whole traces: the pending intervention, the digest backups are verified by, and
the validation of a trace before a restore writes any of it."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, replace
from typing import Any, overload

import orjson

from ranvier.errors import InvalidInput, RestoreConflict
from ranvier.model import (
    ForkOrigin,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceStart,
)
from ranvier.rules.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    PreparedEnvelope,
    encode_payload,
    payload_digest,
    prepare_envelope,
    prepare_intervention,
    validate_completion,
    validate_id,
    validate_step,
)

# --- interventions and digests ----------------------------------------------------


CLEARED = "(cleared)"
"""The target of an intervention that withdraws the pending one (no step has this name:
step names cannot start with "(")."""


def pending_intervention(trace: PersistedTrace) -> Intervention | None:
    """The newest intervention not yet followed by a checkpoint of its target node."""
    if not trace.interventions:
        return None
    latest = trace.interventions[-1]
    if latest.target_node == CLEARED:
        return None
    for event in trace.events:
        if event.node_id == latest.target_node and event.timestamp_ms >= latest.timestamp_ms:
            return None
    return latest


def _envelope_record(event: PersistenceEnvelope) -> list[Any]:
    digest = event.payload_hash
    if digest is None and event.payload is not None:  # a hand-built trace: hash it the same
        digest = payload_digest(encode_payload(event.payload))
    return [
        event.step,
        OutcomeKind(event.outcome_kind).value,
        event.node_id,
        event.timestamp_ms,
        digest,
    ]


def trace_digest(trace: PersistedTrace) -> str:
    """sha256 over everything a trace holds: backups are verified by it."""
    record: list[Any] = [
        trace.trace_id,
        trace.circuit,
        trace.schematic_version,
        [_envelope_record(e) for e in trace.events],
        [_envelope_record(e) for e in trace.superseded_events],
        [
            [i.target_node, i.timestamp_ms, payload_digest(encode_payload(i.payload_override))]
            for i in trace.interventions
        ],
        trace.resumed_from_step,
        None if trace.completion is None else trace.completion.value,
        trace.created_at_ms,
        trace.updated_at_ms,
        trace.completed_at_ms,
    ]
    # what a run was started with joins the record only when set, so the digests of
    # traces stored before it existed (and of backups holding them) stay as they were
    origin = trace.forked_from
    start = [
        payload_digest(encode_payload(trace.input)),
        trace.attempts,
        None if origin is None else [origin.trace_id, origin.step],
    ]
    if start != [None, 0, None]:
        record.append(start)
    return hashlib.sha256(orjson.dumps(record)).hexdigest()


@dataclass(frozen=True, slots=True)
class PreparedStart:
    """A validated `TraceStart`: its input as canonical JSON (None for a null input)."""

    start: TraceStart
    input_json: bytes | None


@overload
def prepare_start(start: TraceStart, *, max_payload_bytes: int = ...) -> PreparedStart: ...
@overload
def prepare_start(start: None, *, max_payload_bytes: int = ...) -> None: ...
def prepare_start(
    start: TraceStart | None, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> PreparedStart | None:
    """Validate what a run starts with before `acquire_lease` writes anything (None: no
    start given, nothing to check)."""
    if start is None:
        return None
    if type(start) is not TraceStart:
        raise InvalidInput(f"expected a TraceStart, got {type(start).__name__}")
    validate_id("circuit", start.circuit)
    validate_id("schematic_version", start.schematic_version)
    return PreparedStart(start, encode_payload(start.input, max_bytes=max_payload_bytes))


# --- restore ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedTrace:
    """A validated trace for `import_trace`: prepared events and intervention payloads."""

    trace: PersistedTrace
    events: tuple[PreparedEnvelope, ...]
    superseded: tuple[PreparedEnvelope, ...]
    interventions: tuple[bytes | None, ...]
    input_json: bytes | None = None
    """The trace's input as canonical JSON (None for a null input)."""


def prepare_trace(
    trace: PersistedTrace, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> PreparedTrace:
    """Validate a whole trace before a restore writes any of it; raises `InvalidInput`."""
    if type(trace) is not PersistedTrace:
        raise InvalidInput(f"expected a PersistedTrace, got {type(trace).__name__}")
    tid = validate_id("trace_id", trace.trace_id)
    validate_id("circuit", trace.circuit)
    validate_id("schematic_version", trace.schematic_version)
    events = tuple(prepare_envelope(e, max_payload_bytes=max_payload_bytes) for e in trace.events)
    superseded = tuple(
        prepare_envelope(e, max_payload_bytes=max_payload_bytes) for e in trace.superseded_events
    )
    for p in (*events, *superseded):
        if (p.envelope.trace_id, p.envelope.circuit) != (tid, trace.circuit):
            raise InvalidInput(
                f"trace {tid!r} holds an event of trace {p.envelope.trace_id!r} "
                f"(circuit {p.envelope.circuit!r}); every event must carry the trace's id "
                "and circuit"
            )
    steps = [p.envelope.step for p in events]
    if any(a >= b for a, b in itertools.pairwise(steps)):
        raise InvalidInput(f"trace {tid!r} events must be ordered by step, one per step")
    _check_trace_times(trace)
    interventions = tuple(
        prepare_intervention(i, max_payload_bytes=max_payload_bytes) for i in trace.interventions
    )
    input_json = encode_payload(trace.input, max_bytes=max_payload_bytes)
    _check_origin(trace)
    hashed = replace(
        trace,
        events=tuple(p.envelope for p in events),
        superseded_events=tuple(p.envelope for p in superseded),
    )
    return PreparedTrace(hashed, events, superseded, interventions, input_json)


def _check_origin(trace: PersistedTrace) -> None:
    validate_step(trace.attempts, what="attempts")
    origin = trace.forked_from
    if origin is None:
        return
    if type(origin) is not ForkOrigin:
        raise InvalidInput(f"forked_from must be a ForkOrigin, got {type(origin).__name__}")
    validate_id("forked_from.trace_id", origin.trace_id)
    validate_step(origin.step, what="forked_from.step")


def _check_trace_times(trace: PersistedTrace) -> None:
    if trace.resumed_from_step is not None:
        validate_step(trace.resumed_from_step, what="resumed_from_step", minimum=-1)
    validate_step(trace.created_at_ms, what="created_at_ms")
    validate_step(trace.updated_at_ms, what="updated_at_ms")
    if (trace.completion is None) != (trace.completed_at_ms is None):
        raise InvalidInput("completion and completed_at_ms must be both set or both None")
    if trace.completion is not None:
        validate_completion(trace.completion)
        validate_step(trace.completed_at_ms, what="completed_at_ms")


def restore_is_new(existing: PersistedTrace | None, incoming: PersistedTrace) -> bool:
    """For `import_trace`: True to write `incoming`, False when the same trace is stored
    already; a different one under the id is `RestoreConflict`."""
    if existing is None:
        return True
    if trace_digest(existing) == trace_digest(incoming):
        return False
    raise RestoreConflict(
        f"trace {incoming.trace_id!r} is already stored with different content; "
        "delete it first to restore the backup's version"
    )
