"""The contract's rules as pure functions, written once for every adapter.

Adapters do I/O; what is valid, what counts as a retry, which completion change is
allowed, when a lease is live and how cursors look is decided here.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import math
from dataclasses import dataclass, fields, replace
from typing import Any

import orjson

from ranvier.errors import (
    CheckpointConflict,
    CircuitMismatch,
    InvalidInput,
    LeaseLost,
    TraceCompleted,
)
from ranvier.model import (
    CompletionState,
    Intervention,
    JSONValue,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceStatus,
)

MAX_ID_LENGTH = 255
"""Longest trace id, circuit, version, node id, holder or compensation key (characters)."""
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20
"""Default limit on a payload's canonical JSON size; stores take `max_payload_bytes`."""
MAX_JSON_DEPTH = 254
"""Most levels of nested lists/objects in a payload (orjson's limit); deeper is `InvalidInput`."""
MAX_BATCH_SIZE = 10_000
MAX_PAGE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class PreparedEnvelope:
    """A validated envelope with its payload hash filled in and its canonical JSON."""

    envelope: PersistenceEnvelope
    payload_json: bytes | None


# --- validation -------------------------------------------------------------------


def validate_id(what: str, value: object) -> str:
    """A non-empty str of at most MAX_ID_LENGTH characters, without NUL or surrogates."""
    if type(value) is not str:
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{what} is {len(value)} characters long; use at most {MAX_ID_LENGTH}")
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character (\\x00); remove it")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{what} is not valid Unicode (lone surrogate)") from None
    return value


def validate_step(step: object, *, what: str = "step", minimum: int = 0) -> int:
    if type(step) is not int:
        raise InvalidInput(f"{what} must be an int, got {type(step).__name__}")
    if step < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, got {step}")
    return step


def validate_positive(what: str, value: object, *, maximum: int | None = None) -> int:
    if type(value) is not int or value <= 0:
        raise InvalidInput(f"{what} must be a positive int, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{what} must be at most {maximum}, got {value}")
    return value


_SCALARS = frozenset((str, int, bool, type(None)))


def _is_plain_json(value: Any) -> bool:
    """Fast type walk (no messages); `_check_json` explains a failure with its path."""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # false for NaN and infinities
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                return False
            if type(item) not in _SCALARS and not _is_plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110 (a loop is faster than all() here)
            if type(item) not in _SCALARS and not _is_plain_json(item):
                return False
        return True
    return False


def _check_json(value: Any, path: str) -> None:
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise InvalidInput(f"payload{path} contains a NUL character (\\x00); remove it")
    elif kind is int or kind is bool or value is None:
        return
    elif kind is float:
        if not math.isfinite(value):
            raise InvalidInput(
                f"payload{path} is {value!r}; JSON has no NaN or infinity, store null "
                "or a string instead"
            )
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidInput(
                    f"payload{path} has a {type(key).__name__} key {key!r}; JSON object "
                    "keys must be str"
                )
            if "\x00" in key:
                raise InvalidInput(f"payload{path} has a key with a NUL character; remove it")
            _check_json(item, f"{path}[{key!r}]")
    elif kind is list:
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
    else:
        raise InvalidInput(
            f"payload{path} is a {kind.__name__}; only JSON values can be stored (dict with "
            "str keys, list, str, int, float, bool, None): convert it first"
        )


def encode_payload(
    payload: JSONValue, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> bytes | None:
    """The payload's canonical JSON (sorted keys), or None for a None payload."""
    if payload is None:
        return None
    try:
        if not _is_plain_json(payload):
            _check_json(payload, "")
    except RecursionError:  # a cycle, or nesting far beyond what JSON stores allow
        raise InvalidInput(
            f"payload is nested deeper than {MAX_JSON_DEPTH} levels (or contains itself); "
            "flatten it"
        ) from None
    try:
        data = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        raise InvalidInput(f"payload cannot be stored as JSON: {exc}") from None
    if b"\\u0000" in data:  # a NUL somewhere (or a literal backslash-u0000): find it
        _check_json(payload, "")
    if len(data) > max_bytes:
        raise InvalidInput(
            f"payload is {len(data)} bytes of JSON; the limit is {max_bytes} "
            "(store a reference instead, or raise max_payload_bytes)"
        )
    return data


def decode_payload(data: bytes | str | None) -> JSONValue:
    return None if data is None else orjson.loads(data)


def payload_digest(data: bytes | None) -> str | None:
    """sha256 hex of the canonical JSON: what re-appends are compared by."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def prepare_envelope(
    envelope: PersistenceEnvelope, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> PreparedEnvelope:
    """Validate an envelope and fill in its payload hash; raises `InvalidInput`."""
    if type(envelope) is not PersistenceEnvelope:
        raise InvalidInput(f"expected a PersistenceEnvelope, got {type(envelope).__name__}")
    validate_id("trace_id", envelope.trace_id)
    validate_id("circuit", envelope.circuit)
    validate_id("schematic_version", envelope.schematic_version)
    validate_step(envelope.step)
    if envelope.node_id is not None:
        validate_id("node_id", envelope.node_id)
    kind = envelope.outcome_kind
    if type(kind) is not OutcomeKind:
        try:
            kind = OutcomeKind(kind)
        except ValueError:
            names = ", ".join(k.value for k in OutcomeKind)
            raise InvalidInput(f"outcome_kind {kind!r} is not one of {names}") from None
    validate_step(envelope.timestamp_ms, what="timestamp_ms")
    data = encode_payload(envelope.payload, max_bytes=max_payload_bytes)
    digest = payload_digest(data)
    if envelope.payload_hash is not None and envelope.payload_hash != digest:
        raise InvalidInput(
            "payload_hash does not match the payload; leave it None to have it computed"
        )
    if envelope.payload_hash != digest or kind is not envelope.outcome_kind:
        envelope = _with_hash(envelope, digest, kind)
    return PreparedEnvelope(envelope, data)


_ENVELOPE_FIELDS = tuple(f.name for f in fields(PersistenceEnvelope))
_set = object.__setattr__


def _with_hash(
    envelope: PersistenceEnvelope, digest: str | None, kind: OutcomeKind
) -> PersistenceEnvelope:
    # dataclasses.replace costs twice as much; this is on every checkpoint's path
    copy = object.__new__(PersistenceEnvelope)
    for name in _ENVELOPE_FIELDS:
        _set(copy, name, getattr(envelope, name))
    _set(copy, "payload_hash", digest)
    _set(copy, "outcome_kind", kind)
    return copy


def prepare_intervention(
    intervention: Intervention, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> bytes | None:
    """Validate an intervention; returns its payload override's canonical JSON."""
    if type(intervention) is not Intervention:
        raise InvalidInput(f"expected an Intervention, got {type(intervention).__name__}")
    validate_id("target_node", intervention.target_node)
    validate_step(intervention.timestamp_ms, what="timestamp_ms")
    return encode_payload(intervention.payload_override, max_bytes=max_payload_bytes)


def validate_completion(state: object) -> CompletionState:
    try:
        return CompletionState(str(state))
    except ValueError:
        names = ", ".join(s.value for s in CompletionState)
        raise InvalidInput(f"completion state {state!r} is not one of {names}") from None


# --- the rules of a write ---------------------------------------------------------


def is_identical_reappend(
    stored_kind: str, stored_node: str | None, stored_hash: str | None, new: PersistenceEnvelope
) -> bool:
    """A retry of the same checkpoint: same outcome kind, node id and payload hash."""
    return (
        stored_kind == new.outcome_kind.value
        and stored_node == new.node_id
        and stored_hash == new.payload_hash
    )


def check_reappend(
    stored_kind: str, stored_node: str | None, stored_hash: str | None, new: PersistenceEnvelope
) -> None:
    """No-op for an identical retry; `CheckpointConflict` for a different envelope."""
    if not is_identical_reappend(stored_kind, stored_node, stored_hash, new):
        raise CheckpointConflict(
            f"trace {new.trace_id!r} already has a different checkpoint at step {new.step} "
            f"({stored_kind} at node {stored_node!r}); resume to an earlier step to rewrite it"
        )


def check_circuit(stored_circuit: str, envelope: PersistenceEnvelope) -> None:
    if stored_circuit != envelope.circuit:
        raise CircuitMismatch(
            f"trace {envelope.trace_id!r} belongs to circuit {stored_circuit!r}, "
            f"not {envelope.circuit!r}; use another trace id"
        )


def check_open(trace_id: str, completion: CompletionState | str | None) -> None:
    if completion is not None:
        raise TraceCompleted(
            f"trace {trace_id!r} is already completed ({CompletionState(completion).value})"
        )


def completion_change(
    trace_id: str, current: CompletionState | str | None, new: CompletionState
) -> bool:
    """True if `new` must be written, False for a no-op; `TraceCompleted` if not allowed."""
    if current is None:
        return True
    current = CompletionState(current)
    if current is new:
        return False
    if current is CompletionState.FAULT and new is CompletionState.COMPENSATED:
        return True
    raise TraceCompleted(
        f"trace {trace_id!r} is already completed as {current.value}; it cannot become {new.value}"
    )


def check_resume_step(trace_id: str, from_step: object, last_live_step: int | None) -> int:
    step = validate_step(from_step, what="from_step", minimum=-1)
    last = -1 if last_live_step is None else last_live_step
    if step > last:
        raise InvalidInput(
            f"cannot resume trace {trace_id!r} after step {step}: its last checkpoint is "
            f"step {last}"
        )
    return step


# --- leases -----------------------------------------------------------------------


def lease_is_live(expires_at_ms: int | None, now_ms: int) -> bool:
    return expires_at_ms is not None and expires_at_ms > now_ms


def check_fence(
    trace_id: str, fence: int | None, token: int | None, expires_at_ms: int | None, now_ms: int
) -> None:
    """A write with `fence` passes only while that token is the trace's live lease."""
    if fence is None:
        return
    if token != fence or not lease_is_live(expires_at_ms, now_ms):
        raise LeaseLost(
            f"the lease on trace {trace_id!r} under fencing token {fence} is no longer held; "
            "another worker may have taken the trace over"
        )


def validate_lease_request(trace_id: str, holder: str, ttl_ms: object) -> int:
    validate_id("trace_id", trace_id)
    validate_id("holder", holder)
    return validate_positive("ttl_ms", ttl_ms, maximum=365 * 24 * 3600 * 1000)


# --- listing ----------------------------------------------------------------------


def trace_status(completion: CompletionState | str | None, lease_live: bool) -> TraceStatus:
    if completion is None:
        return TraceStatus.RUNNING if lease_live else TraceStatus.INTERRUPTED
    return _STATUS_OF_COMPLETION[CompletionState(completion)]


_STATUS_OF_COMPLETION = {
    CompletionState.SUCCESS: TraceStatus.SUCCEEDED,
    CompletionState.FAULT: TraceStatus.FAULTED,
    CompletionState.COMPENSATED: TraceStatus.COMPENSATED,
    CompletionState.CANCELLED: TraceStatus.CANCELLED,
}
COMPLETION_OF_STATUS = {status: state for state, status in _STATUS_OF_COMPLETION.items()}


def status_matches(wanted: TraceStatus | None, actual: TraceStatus) -> bool:
    if wanted is None or wanted is actual:
        return True
    return wanted is TraceStatus.COMPLETED and actual not in (
        TraceStatus.RUNNING,
        TraceStatus.INTERRUPTED,
    )


def validate_status(status: object) -> TraceStatus | None:
    if status is None:
        return None
    try:
        return TraceStatus(str(status))
    except ValueError:
        names = ", ".join(s.value for s in TraceStatus)
        raise InvalidInput(f"status {status!r} is not one of {names}") from None


def validate_list_query(
    status: object,
    circuit: object,
    updated_before_ms: object,
    limit: object,
    cursor: str | None,
) -> tuple[TraceStatus | None, str | None]:
    """Check every `list_traces` argument; returns the wanted status and cursor position."""
    wanted = validate_status(status)
    if circuit is not None:
        validate_id("circuit", circuit)
    if updated_before_ms is not None:
        validate_step(updated_before_ms, what="updated_before_ms")
    validate_positive("limit", limit, maximum=MAX_PAGE_SIZE)
    return wanted, decode_cursor(cursor)


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The position `encode_cursor` wrapped; `InvalidInput` for anything it did not make."""
    if cursor is None:
        return None
    position = ""
    if type(cursor) is str:
        try:
            position = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
        except ValueError:  # also UnicodeError and binascii.Error
            position = ""
    # b64decode skips stray characters: only an exact round trip proves it is ours
    if not position or encode_cursor(position) != cursor:
        raise InvalidInput(
            f"cursor {cursor!r} is not one this store handed out; pass next_cursor as is"
        )
    return position


# --- interventions and digests ----------------------------------------------------


def pending_intervention(trace: PersistedTrace) -> Intervention | None:
    """The newest intervention not yet followed by a checkpoint of its target node."""
    if not trace.interventions:
        return None
    latest = trace.interventions[-1]
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
    record = [
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
    return hashlib.sha256(orjson.dumps(record)).hexdigest()


# --- restore ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PreparedTrace:
    """A validated trace for `import_trace`: prepared events and intervention payloads."""

    trace: PersistedTrace
    events: tuple[PreparedEnvelope, ...]
    superseded: tuple[PreparedEnvelope, ...]
    interventions: tuple[bytes | None, ...]


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
    hashed = replace(
        trace,
        events=tuple(p.envelope for p in events),
        superseded_events=tuple(p.envelope for p in superseded),
    )
    return PreparedTrace(hashed, events, superseded, interventions)


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
