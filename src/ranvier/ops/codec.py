"""PersistedTrace <-> plain JSON objects: the shape of a backup line and of `--json`.

Decoding validates through the store rules, so a record whose payload no longer
matches its hash (a corrupt backup) is rejected as `InvalidInput`.
"""

from __future__ import annotations

from typing import Any

from ranvier import rules
from ranvier.errors import InvalidInput
from ranvier.model import (
    CompensationRecord,
    CompensationState,
    CompletionState,
    ForkOrigin,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
)


def envelope_to_dict(event: PersistenceEnvelope) -> dict[str, Any]:
    return {
        "step": event.step,
        "schematic_version": event.schematic_version,
        "node_id": event.node_id,
        "outcome_kind": event.outcome_kind.value,
        "timestamp_ms": event.timestamp_ms,
        "payload_hash": event.payload_hash,
        "payload": event.payload,
    }


def trace_to_dict(trace: PersistedTrace) -> dict[str, Any]:
    return {
        "trace_id": trace.trace_id,
        "circuit": trace.circuit,
        "schematic_version": trace.schematic_version,
        "events": [envelope_to_dict(e) for e in trace.events],
        "superseded_events": [envelope_to_dict(e) for e in trace.superseded_events],
        "interventions": [
            {
                "target_node": i.target_node,
                "payload_override": i.payload_override,
                "timestamp_ms": i.timestamp_ms,
            }
            for i in trace.interventions
        ],
        "resumed_from_step": trace.resumed_from_step,
        "completion": None if trace.completion is None else trace.completion.value,
        "created_at_ms": trace.created_at_ms,
        "updated_at_ms": trace.updated_at_ms,
        "completed_at_ms": trace.completed_at_ms,
        "input": trace.input,
        "attempts": trace.attempts,
        "forked_from": (
            None
            if trace.forked_from is None
            else {"trace_id": trace.forked_from.trace_id, "step": trace.forked_from.step}
        ),
    }


def _envelope(trace_id: str, circuit: str, data: dict[str, Any]) -> PersistenceEnvelope:
    envelope = PersistenceEnvelope(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=data["schematic_version"],
        step=data["step"],
        outcome_kind=OutcomeKind(data["outcome_kind"]),
        node_id=data["node_id"],
        timestamp_ms=data["timestamp_ms"],
        payload_hash=data["payload_hash"],
        payload=data["payload"],
    )
    return rules.prepare_envelope(envelope, max_payload_bytes=1 << 62).envelope


def _origin(data: dict[str, Any] | None) -> ForkOrigin | None:
    if data is None:
        return None
    return ForkOrigin(trace_id=data["trace_id"], step=data["step"])


def trace_from_dict(data: dict[str, Any]) -> PersistedTrace:
    """The trace a `trace_to_dict` object describes; `InvalidInput` if it is malformed."""
    try:
        trace_id, circuit = data["trace_id"], data["circuit"]
        completion = data["completion"]
        return PersistedTrace(
            trace_id=rules.validate_id("trace_id", trace_id),
            circuit=rules.validate_id("circuit", circuit),
            schematic_version=data["schematic_version"],
            events=tuple(_envelope(trace_id, circuit, e) for e in data["events"]),
            superseded_events=tuple(
                _envelope(trace_id, circuit, e) for e in data["superseded_events"]
            ),
            interventions=tuple(
                Intervention(
                    target_node=i["target_node"],
                    payload_override=i["payload_override"],
                    timestamp_ms=i["timestamp_ms"],
                )
                for i in data["interventions"]
            ),
            resumed_from_step=data["resumed_from_step"],
            completion=None if completion is None else CompletionState(completion),
            created_at_ms=data["created_at_ms"],
            updated_at_ms=data["updated_at_ms"],
            completed_at_ms=data["completed_at_ms"],
            # absent from records written before runs stored their input: the defaults
            input=data.get("input"),
            attempts=data.get("attempts", 0),
            forked_from=_origin(data.get("forked_from")),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"not a trace record ({type(exc).__name__}: {exc})") from None


def record_to_dict(record: CompensationRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "state": record.state.value,
        "claimed_at_ms": record.claimed_at_ms,
        "compensated_at_ms": record.compensated_at_ms,
    }


def record_from_dict(data: dict[str, Any]) -> CompensationRecord:
    return CompensationRecord(
        key=data["key"],
        state=CompensationState(data["state"]),
        claimed_at_ms=data["claimed_at_ms"],
        compensated_at_ms=data.get("compensated_at_ms"),
    )
