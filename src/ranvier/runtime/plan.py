"""Where a run starts: fresh, or from a stored trace (runbook Scenario A).

A pure function of the axon and the loaded trace, so every resume decision is
tested without a store.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ranvier.errors import InvalidInput, VersionMismatch
from ranvier.model import (
    CompletionState,
    Intervention,
    JSONValue,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
)
from ranvier.rules import pending_intervention
from ranvier.runtime.outcome import Outcome


@dataclass(frozen=True, slots=True, kw_only=True)
class Migration:
    """How a trace written by `from_version` continues under the current version."""

    from_version: str
    restart: bool = False
    """Rewind the whole trace and run from the first step."""
    at: str | None = None
    """Continue at this named step (default: after the last checkpointed one)."""
    transform: Callable[[JSONValue], JSONValue] | None = None
    """Maps the last checkpoint's value to the input of the step that runs next."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """Run steps from `index` with `value`, writing checkpoint `seq` next; or just finish."""

    index: int | None
    value: JSONValue = None
    seq: int = 0
    rewind_to: int | None = None
    """`store.resume(trace_id, rewind_to)` before the first step (records the resume)."""
    finish: Outcome | None = None
    """With `index` None: the recorded terminal outcome to finish the trace with."""
    completion: CompletionState | None = None
    """Set when the trace is already completed: nothing runs, the stored result returns."""


def plan_fresh(value: JSONValue) -> Plan:
    return Plan(index=0, value=value)


def plan_resume(
    trace: PersistedTrace,
    version: str,
    index_of: Callable[[str], int],
    migrations: dict[str, Migration],
    n_steps: int,
) -> Plan:
    """The plan for a stored trace under the pipeline `version` with `n_steps` steps."""
    if trace.completion is not None:
        return Plan(index=None, finish=stored_outcome(trace), completion=trace.completion)
    last = trace.events[-1] if trace.events else None
    written_by = last.schematic_version if last else trace.schematic_version
    intervention = pending_intervention(trace)
    if intervention is not None:
        return _plan_intervention(trace, index_of(intervention.target_node), intervention)
    if written_by != version:
        migration = migrations.get(written_by)
        if migration is None:
            raise VersionMismatch(
                f"trace {trace.trace_id!r} was written by version {written_by!r} of "
                f"{trace.circuit!r}, this pipeline is version {version!r}; register "
                f"axon.migrate_from({written_by!r}, restart=True) or (..., at='<step>')"
            )
        return _plan_migration(trace, last, migration, index_of)
    if last is None:  # killed before its first checkpoint: run from the start
        return Plan(index=0, value=trace.input, seq=0)
    return _plan_after(last, index_of, n_steps)


def _plan_after(last: PersistenceEnvelope, index_of: Callable[[str], int], n: int) -> Plan:
    outcome = Outcome.from_checkpoint(last.outcome_kind, last.payload)
    kind = outcome.kind
    if kind is OutcomeKind.NEXT or kind is OutcomeKind.EMIT or kind is OutcomeKind.ENTER:
        after = index_of(_node(last)) + (0 if kind is OutcomeKind.ENTER else 1)
        if after >= n:
            return Plan(index=None, finish=outcome, seq=last.step, rewind_to=last.step)
        return Plan(index=after, value=outcome.value, seq=last.step + 1, rewind_to=last.step)
    if kind is OutcomeKind.JUMP:
        return Plan(
            index=index_of(outcome.target or ""),
            value=outcome.value,
            seq=last.step + 1,
            rewind_to=last.step,
        )
    return Plan(index=None, finish=outcome, seq=last.step, rewind_to=last.step)


def _plan_intervention(trace: PersistedTrace, index: int, intervention: Intervention) -> Plan:
    """Rewind to just before the target step's latest checkpoint (or after the last one)."""
    earlier = [e.step for e in trace.events if e.node_id == intervention.target_node]
    last = trace.events[-1].step if trace.events else -1
    seq = earlier[-1] if earlier else last + 1
    return Plan(index=index, value=intervention.payload_override, seq=seq, rewind_to=seq - 1)


def _plan_migration(
    trace: PersistedTrace,
    last: PersistenceEnvelope | None,
    migration: Migration,
    index_of: Callable[[str], int],
) -> Plan:
    # after a restart rewound everything, the old last checkpoint is the newest superseded
    source = last or (trace.superseded_events[-1] if trace.superseded_events else None)
    if source is None:  # no checkpoint yet: the stored input
        value = trace.input
    else:
        value = Outcome.from_checkpoint(source.outcome_kind, source.payload).value
    if migration.transform is not None:
        value = migration.transform(value)
    if migration.restart:
        return Plan(index=0, value=value, seq=0, rewind_to=-1)
    last_step = last.step if last else -1
    if migration.at is None:
        raise InvalidInput("a migration needs restart=True or at='<step name>'")
    return Plan(index=index_of(migration.at), value=value, seq=last_step + 1, rewind_to=last_step)


def _node(event: PersistenceEnvelope) -> str:
    if event.node_id is None:
        raise InvalidInput(f"checkpoint {event.step} of trace {event.trace_id!r} names no step")
    return event.node_id


def stored_outcome(trace: PersistedTrace) -> Outcome:
    """The outcome a completed trace ended with, rebuilt from its events."""
    if trace.completion is CompletionState.CANCELLED:
        return Outcome.cancelled()
    for event in reversed(trace.events):
        if event.outcome_kind is not OutcomeKind.COMPENSATED and event.node_id is not None:
            return Outcome.from_checkpoint(event.outcome_kind, event.payload)
    return Outcome.next(None)
