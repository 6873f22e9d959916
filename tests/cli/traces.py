"""Builders of whole traces for CLI tests (written with import_trace: fast, exact times)."""

from __future__ import annotations

from ranvier import (
    CompletionState,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
)

DAY_MS = 86_400_000


def make_trace(
    trace_id: str,
    *,
    steps: int = 3,
    circuit: str = "orders",
    completion: CompletionState | None = None,
    at_ms: int = 1_700_000_000_000,
    completed_at_ms: int | None = None,
    superseded: int = 0,
    interventions: int = 0,
    payload_size: int = 8,
) -> PersistedTrace:
    def event(step: int, node: str, ts: int) -> PersistenceEnvelope:
        return PersistenceEnvelope(
            trace_id=trace_id,
            circuit=circuit,
            schematic_version="1.0",
            step=step,
            outcome_kind=OutcomeKind.NEXT,
            node_id=node,
            timestamp_ms=ts,
            payload={"trace": trace_id, "step": step, "pad": "x" * payload_size},
        )

    events = tuple(event(s, f"node{s}", at_ms + s) for s in range(steps))
    old = tuple(event(steps - 1 + i, f"old{i}", at_ms + i) for i in range(superseded))
    orders = tuple(
        Intervention(target_node=f"node{i}", payload_override={"fix": i}, timestamp_ms=at_ms + 50)
        for i in range(interventions)
    )
    done = None if completion is None else (completed_at_ms or at_ms + steps + 100)
    return PersistedTrace(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version="1.0",
        events=events,
        superseded_events=old,
        interventions=orders,
        resumed_from_step=steps - 2 if superseded else None,
        completion=completion,
        created_at_ms=at_ms,
        updated_at_ms=done or at_ms + steps,
        completed_at_ms=done,
    )
