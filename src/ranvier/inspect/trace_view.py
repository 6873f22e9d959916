"""A trace's page: its timeline, faults, compensation, lease and origin, read-only.

The timeline puts live checkpoints, superseded ones (rewound by a resume, kept for
audit), interventions and the inspector's own actions in time order, each with the
time since the row before it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ranvier import rules
from ranvier.errors import InvalidInput, TraceNotFound
from ranvier.inspect.audit import ActionEntry
from ranvier.inspect.formatting import payload_bytes, preview
from ranvier.inspect.state import Inspector
from ranvier.model import (
    CompensationRecord,
    CompensationState,
    CompletionState,
    JSONValue,
    Lease,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceStatus,
)
from ranvier.ops.timeline import compensation_failed
from ranvier.runtime import compensation_key

_RANK = {"superseded": 0, "": 1, "intervention": 2, "action": 3}
"""What happened first, at equal times."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Entry:
    """One row of the timeline."""

    step: int | None
    node: str | None
    outcome: str
    timestamp_ms: int
    gap_ms: int | None
    """Time since the row before (since the trace was created, for the first)."""
    size: int
    preview: str
    ref: str | None
    """Names the full payload (`payload_of`); None for rows without one."""
    mark: str
    """"" live, "superseded", "intervention" or "action"."""
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    step: int
    node: str | None
    kind: str
    message: str
    traceback: str | None
    superseded: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class Compensation:
    """The compensation claim of one fault of the trace."""

    key: str
    fault_kind: str
    fault_step: int
    record: CompensationRecord | None

    @property
    def state(self) -> str:
        if self.record is None:
            return "not claimed"
        if self.record.state is CompensationState.COMPENSATED:
            return "compensated"
        return "claimed, unfinished"

    @property
    def releasable(self) -> bool:
        return self.record is not None and self.record.state is CompensationState.CLAIMED


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceView:
    trace: PersistedTrace
    status: TraceStatus
    lease: Lease | None
    entries: list[Entry]
    faults: list[Fault]
    compensations: list[Compensation]
    compensation_failed: bool
    poisoned: bool
    steps: tuple[str, ...]
    """Nodes to intervene at or fork from: the pipeline's (with --app), else the trace's."""
    pipeline_known: bool
    has_hook: bool

    @property
    def live(self) -> bool:
        """The page refreshes itself while the trace runs."""
        return self.status is TraceStatus.RUNNING

    @property
    def open(self) -> bool:
        return self.trace.completion is None


async def trace_view(inspector: Inspector, trace_id: str) -> TraceView:
    """Everything the trace page shows; `TraceNotFound` if there is no such trace."""
    store = inspector.store
    trace = await store.load(rules.validate_id("trace id", trace_id))
    if trace is None:
        raise TraceNotFound(f"no trace is stored under {trace_id!r}")
    lease = await store.get_lease(trace.trace_id)
    status = rules.trace_status(trace.completion, lease is not None)
    pipeline = inspector.pipeline(trace.circuit)
    compensations = [
        Compensation(
            key=key,
            fault_kind=kind,
            fault_step=step,
            record=await store.compensations.get(key),
        )
        for key, kind, step in _fault_keys(trace)
    ]
    steps = pipeline.step_names if pipeline is not None else _nodes(trace)
    return TraceView(
        trace=trace,
        status=status,
        lease=lease,
        entries=entries(trace, inspector.actions.for_trace(trace.trace_id)),
        faults=faults(trace),
        compensations=compensations,
        compensation_failed=compensation_failed(trace),
        poisoned=status is TraceStatus.INTERRUPTED
        and trace.attempts
        >= (pipeline.max_attempts if pipeline else inspector.settings.max_attempts),
        steps=steps,
        pipeline_known=pipeline is not None,
        has_hook=pipeline is not None and pipeline.compensation is not None,
    )


def entries(trace: PersistedTrace, actions: list[ActionEntry]) -> list[Entry]:
    """Every checkpoint, superseded checkpoint, intervention and action, in time order."""
    rows = [_event(e, f"event:{i}", "") for i, e in enumerate(trace.events)] + [
        _event(e, f"superseded:{i}", "superseded") for i, e in enumerate(trace.superseded_events)
    ]
    rows += [
        Entry(
            step=None,
            node=i.target_node,
            outcome="Intervention",
            timestamp_ms=i.timestamp_ms,
            gap_ms=None,
            size=payload_bytes(i.payload_override),
            preview=preview(i.payload_override),
            ref=f"intervention:{n}",
            mark="intervention",
        )
        for n, i in enumerate(trace.interventions)
    ]
    rows += [
        Entry(
            step=None,
            node=None,
            outcome=a.action,
            timestamp_ms=a.timestamp_ms,
            gap_ms=None,
            size=0,
            preview="",
            ref=None,
            mark="action",
            detail=f"{a.outcome}: {a.detail}" if a.detail else a.outcome,
        )
        for a in actions
    ]
    # at equal times: checkpoints by step (a superseded one before its replacement),
    # then interventions and actions, which always follow the checkpoint they act on
    rows.sort(key=lambda r: (r.timestamp_ms, r.step is None, r.step or 0, _RANK[r.mark]))
    previous = trace.created_at_ms or None
    timed = []
    for row in rows:
        gap = None if previous is None else row.timestamp_ms - previous
        timed.append(replace(row, gap_ms=gap))
        previous = row.timestamp_ms
    return timed


def _event(e: PersistenceEnvelope, ref: str, mark: str) -> Entry:
    return Entry(
        step=e.step,
        node=e.node_id,
        outcome=e.outcome_kind.value,
        timestamp_ms=e.timestamp_ms,
        gap_ms=None,
        size=payload_bytes(e.payload),
        preview=preview(e.payload),
        ref=ref,
        mark=mark,
    )


def faults(trace: PersistedTrace) -> list[Fault]:
    """Every fault checkpoint, live and superseded, with its stored traceback."""
    found = []
    for events, superseded in ((trace.events, False), (trace.superseded_events, True)):
        for e in events:
            if e.outcome_kind is not OutcomeKind.FAULT:
                continue
            payload = e.payload if isinstance(e.payload, dict) else {}
            traceback = payload.get("traceback")
            found.append(
                Fault(
                    step=e.step,
                    node=e.node_id,
                    kind=str(payload.get("kind", "fault")),
                    message=str(payload.get("message", "")),
                    traceback=None if not traceback else str(traceback).rstrip(),
                    superseded=superseded,
                )
            )
    return found


def _fault_keys(trace: PersistedTrace) -> list[tuple[str, str, int]]:
    """The compensation key of each live fault of the run (not the hook's own marker)."""
    keys = []
    for e in trace.events:
        if e.outcome_kind is OutcomeKind.FAULT and e.node_id is not None:
            payload = e.payload if isinstance(e.payload, dict) else {}
            kind = str(payload.get("kind") or "fault")
            keys.append((compensation_key(trace.trace_id, trace.circuit, kind), kind, e.step))
    return keys


def _nodes(trace: PersistedTrace) -> tuple[str, ...]:
    seen = (*trace.superseded_events, *trace.events)
    return tuple(dict.fromkeys(e.node_id for e in seen if e.node_id is not None))


def payload_of(trace: PersistedTrace, ref: str) -> JSONValue:
    """The payload a timeline row's `ref` names ("input", "event:3", "superseded:0",
    "intervention:1"); `InvalidInput` for anything else."""
    if ref == "input":
        return trace.input
    kind, _, index = ref.partition(":")
    sources: dict[str, tuple[object, ...]] = {
        "event": trace.events,
        "superseded": trace.superseded_events,
        "intervention": trace.interventions,
    }
    items = sources.get(kind)
    if items is None or not index.isdigit() or int(index) >= len(items):
        raise InvalidInput(f"no payload {ref!r} in trace {trace.trace_id!r}")
    item = items[int(index)]
    if isinstance(item, PersistenceEnvelope):
        return item.payload
    return getattr(item, "payload_override", None)


def is_faulted(trace: PersistedTrace) -> bool:
    return trace.completion is CompletionState.FAULT
