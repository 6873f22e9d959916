"""Forking a trace: a new trace that starts again at one step of a stored one.

A pure function of the source trace, so what is copied and where the fork starts is
tested without a store. The fork's first step is recorded as an intervention inside
the new trace, so a fork killed before that step is resumed there by any worker.
"""

from __future__ import annotations

from dataclasses import replace

from ranvier.errors import InvalidInput
from ranvier.model import ForkOrigin, Intervention, JSONValue, PersistedTrace
from ranvier.runtime.outcome import Outcome


def fork_trace(
    source: PersistedTrace,
    trace_id: str,
    at: str,
    value: JSONValue,
    version: str,
    now_ms: int,
) -> PersistedTrace:
    """The new trace: the source's live checkpoints before `at`'s latest one, its input,
    where it came from, and an intervention that runs `at` with `value` (if not None)
    or with the value of the checkpoint before it."""
    if trace_id == source.trace_id:
        raise InvalidInput(f"a fork needs a new trace id, not the source's {trace_id!r}")
    step = _fork_step(source, at)
    kept = tuple(replace(e, trace_id=trace_id) for e in source.events if e.step < step)
    if value is None:
        value = _value_before(source, kept)
    return PersistedTrace(
        trace_id=trace_id,
        circuit=source.circuit,
        schematic_version=version,
        events=kept,
        interventions=(Intervention(target_node=at, payload_override=value, timestamp_ms=now_ms),),
        created_at_ms=now_ms,
        updated_at_ms=now_ms,
        input=source.input,
        forked_from=ForkOrigin(trace_id=source.trace_id, step=step),
    )


def _fork_step(source: PersistedTrace, at: str) -> int:
    """The source's step number where `at` runs again: its latest live checkpoint, or,
    if `at` has none (the run stopped before it), the step after the last one."""
    ran = [e.step for e in source.events if e.node_id == at]
    if ran:
        return ran[-1]
    if source.completion is not None and source.events:
        raise InvalidInput(
            f"step {at!r} never ran in trace {source.trace_id!r}, which is completed; "
            f"fork at one of the steps it ran: {', '.join(_nodes(source))}"
        )
    return source.events[-1].step + 1 if source.events else 0


def _value_before(source: PersistedTrace, kept: tuple[object, ...]) -> JSONValue:
    if not kept:
        return source.input
    previous = source.events[len(kept) - 1]
    return Outcome.from_checkpoint(previous.outcome_kind, previous.payload).value


def _nodes(trace: PersistedTrace) -> list[str]:
    return list(dict.fromkeys(e.node_id for e in trace.events if e.node_id is not None))
