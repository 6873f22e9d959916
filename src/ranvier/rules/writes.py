"""The rules of a write: retries versus conflicts, circuits, completion, resume, leases."""

from __future__ import annotations

from ranvier.errors import (
    CheckpointConflict,
    CircuitMismatch,
    InvalidInput,
    LeaseLost,
    TraceCompleted,
)
from ranvier.model import CompletionState, PersistenceEnvelope
from ranvier.rules.validation import validate_id, validate_positive, validate_step

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
