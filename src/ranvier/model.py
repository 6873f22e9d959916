"""Value objects shared by the stores, the runtime and the CLI.

All of them are frozen, slotted and keyword-only; enums carry their wire values.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeAlias

JSONValue: TypeAlias = Any
"""A JSON value: dict with str keys, list, str, int, finite float, bool or None."""


def now_ms() -> int:
    """The local clock in unix milliseconds (client side; stores use their own clock)."""
    return time.time_ns() // 1_000_000


class CompletionState(StrEnum):
    SUCCESS = "success"
    FAULT = "fault"
    CANCELLED = "cancelled"
    COMPENSATED = "compensated"


class OutcomeKind(StrEnum):
    ENTER = "Enter"
    NEXT = "Next"
    BRANCH = "Branch"
    JUMP = "Jump"
    EMIT = "Emit"
    FAULT = "Fault"
    COMPENSATED = "Compensated"
    CANCELLED = "Cancelled"


class TraceStatus(StrEnum):
    """What `list_traces(status=...)` filters on.

    `running` and `interrupted` are both unfinished traces, told apart by a live lease;
    `completed` is any completion state, the others are one completion state each.
    """

    RUNNING = "running"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    SUCCEEDED = "succeeded"
    FAULTED = "faulted"
    COMPENSATED = "compensated"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistenceEnvelope:
    """One checkpoint: the outcome of step `step` of trace `trace_id`."""

    trace_id: str
    circuit: str
    schematic_version: str
    step: int
    outcome_kind: OutcomeKind = OutcomeKind.NEXT
    node_id: str | None = None
    timestamp_ms: int = field(default_factory=now_ms)
    payload_hash: str | None = None
    payload: JSONValue = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Intervention:
    """An operator's order: resume at `target_node` with `payload_override` as its input."""

    target_node: str
    payload_override: JSONValue = None
    timestamp_ms: int = field(default_factory=now_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkOrigin:
    """Where a forked trace came from: its source trace, and the source's step at which
    the fork ran again (the source's live checkpoints before it were copied)."""

    trace_id: str
    step: int


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceStart:
    """What a run starts with, stored with its lease before the first step runs.

    Given to `acquire_lease(..., start=...)`: a trace not stored yet is created from it
    (no events, its `input` kept), so a run killed at any instant can be resumed.
    """

    circuit: str
    schematic_version: str
    input: JSONValue = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistedTrace:
    """Everything stored for one trace.

    `events` is the live history, one event per step, ordered by step. Events that a
    rewind (`resume` to an earlier step) replaced stay in `superseded_events` for audit.
    """

    trace_id: str
    circuit: str
    schematic_version: str
    events: tuple[PersistenceEnvelope, ...]
    interventions: tuple[Intervention, ...] = ()
    resumed_from_step: int | None = None
    completion: CompletionState | None = None
    created_at_ms: int = 0
    updated_at_ms: int = 0
    completed_at_ms: int | None = None
    superseded_events: tuple[PersistenceEnvelope, ...] = ()
    input: JSONValue = None
    """The value the run was started with (None for traces stored before 0.2)."""
    attempts: int = 0
    """How many times a run took the trace's lease while it was unfinished."""
    forked_from: ForkOrigin | None = None

    @property
    def last_step(self) -> int | None:
        return self.events[-1].step if self.events else None

    @property
    def last_event(self) -> PersistenceEnvelope | None:
        return self.events[-1] if self.events else None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeCursor:
    trace_id: str
    next_step: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationContext:
    trace_id: str
    circuit: str
    fault_kind: str
    fault_step: int
    timestamp_ms: int = field(default_factory=now_ms)
    resources: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The resources of the worker running the hook (as `StepContext.resources`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TraceSummary:
    """One row of `list_traces`: the trace's state without its events."""

    trace_id: str
    circuit: str
    schematic_version: str
    status: TraceStatus
    completion: CompletionState | None
    last_step: int | None
    event_count: int
    resumed_from_step: int | None
    created_at_ms: int
    updated_at_ms: int
    completed_at_ms: int | None
    attempts: int = 0
    """Lease acquisitions by runs while unfinished (see `PersistedTrace.attempts`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TracePage:
    """A page of `list_traces`; pass `next_cursor` back to get the next one (None: done)."""

    items: tuple[TraceSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class Lease:
    """The right to drive one trace until `expires_at_ms` (store clock).

    `token` is the fencing token: it grows with every acquisition of the trace's lease,
    and writes that carry an older one are rejected with `LeaseLost`.
    """

    trace_id: str
    holder: str
    token: int
    expires_at_ms: int


class CompensationState(StrEnum):
    CLAIMED = "claimed"
    COMPENSATED = "compensated"


@dataclass(frozen=True, slots=True, kw_only=True)
class CompensationRecord:
    """A compensation key: claimed before the hook runs, compensated once it succeeded."""

    key: str
    state: CompensationState
    claimed_at_ms: int
    compensated_at_ms: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreDescription:
    """What a store says about itself (`describe()`), for operators and `doctor`."""

    adapter: str
    location: str
    """Where the data lives: the file, or the URL with its password masked."""
    schema_version: int | None
    """The schema version stored; None when nothing was created yet."""
    latest_schema_version: int | None
    """The version this ranvier writes (None where the store has no versioned schema)."""
    objects: tuple[str, ...]
    """The tables (SQL) or key patterns (Redis) the store uses."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """Durability and sizing settings `doctor` judges (synchronous, pool size...)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseToken:
    """The last fencing token handed out for a trace (backed up so that a restored
    store never hands out a token at or below one already used)."""

    trace_id: str
    token: int
