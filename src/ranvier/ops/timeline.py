"""A trace as a timeline for people: live and superseded events and interventions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from ranvier import rules
from ranvier.model import JSONValue, OutcomeKind, PersistedTrace
from ranvier.runtime.compensation import COMPENSATION_FAILED


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineRow:
    step: int | None
    node: str | None
    outcome: str
    timestamp_ms: int
    payload_bytes: int
    mark: str
    """"" for a live event, "superseded" for a rewound one, "intervention" for an order."""


def iso(ms: int | None) -> str:
    """UTC, to the millisecond: 2026-02-26T10:00:00.123Z."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def short(ms: int | None) -> str:
    """UTC, to the second, for tables: 2026-02-26 10:00:00."""
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _size(payload: JSONValue) -> int:
    data = rules.encode_payload(payload, max_bytes=1 << 62)
    return 0 if data is None else len(data)


def timeline(trace: PersistedTrace) -> list[TimelineRow]:
    """Every event and intervention, in time order (step order within one time)."""
    rows = [
        TimelineRow(
            step=e.step,
            node=e.node_id,
            outcome=e.outcome_kind.value,
            timestamp_ms=e.timestamp_ms,
            payload_bytes=_size(e.payload),
            mark=mark,
        )
        for events, mark in ((trace.events, ""), (trace.superseded_events, "superseded"))
        for e in events
    ]
    rows += [
        TimelineRow(
            step=None,
            node=i.target_node,
            outcome="Intervention",
            timestamp_ms=i.timestamp_ms,
            payload_bytes=_size(i.payload_override),
            mark="intervention",
        )
        for i in trace.interventions
    ]
    rank = {"superseded": 0, "": 1, "intervention": 2}  # what ran first, at equal times
    rows.sort(key=lambda r: (r.timestamp_ms, -1 if r.step is None else r.step, rank[r.mark]))
    return rows


def compensation_failed(trace: PersistedTrace) -> bool:
    """True when the trace's compensation hook failed (a marker follows its fault)."""
    return any(
        e.outcome_kind is OutcomeKind.FAULT
        and e.node_id is None
        and isinstance(e.payload, dict)
        and e.payload.get("kind") == COMPENSATION_FAILED
        for e in trace.events
    )


def faults(trace: PersistedTrace) -> list[str]:
    """Each live fault as text: step, node, kind, message and the stored traceback."""
    texts = []
    for e in trace.events:
        if e.outcome_kind is not OutcomeKind.FAULT or not isinstance(e.payload, dict):
            continue
        where = e.node_id or "compensation hook"
        text = f"fault at step {e.step} ({where}): {e.payload.get('kind')}: "
        text += str(e.payload.get("message"))
        if e.payload.get("traceback"):
            text += "\n" + str(e.payload["traceback"]).rstrip()
        texts.append(text)
    return texts
