"""Small builders shared by the conformance suite."""

from __future__ import annotations

import uuid
from typing import Any

from ranvier import OutcomeKind, PersistenceEnvelope


def new_trace_id(label: str = "t") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def envelope(
    trace_id: str,
    step: int,
    payload: Any = None,
    *,
    circuit: str = "orders",
    version: str = "1.0",
    kind: OutcomeKind = OutcomeKind.NEXT,
    node_id: str | None = None,
    timestamp_ms: int | None = None,
) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=version,
        step=step,
        outcome_kind=kind,
        node_id=node_id if node_id is not None else f"node{step}",
        payload=payload if payload is not None else {"step": step},
        **({} if timestamp_ms is None else {"timestamp_ms": timestamp_ms}),
    )
