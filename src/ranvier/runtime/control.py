"""Operator actions on traces: cancel a run, compensate a faulted trace by hand."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ranvier.errors import InvalidInput, TraceNotFound
from ranvier.model import CompensationContext, CompletionState, OutcomeKind, PersistedTrace
from ranvier.runtime.checkpoint import RetryPolicy
from ranvier.runtime.compensation import CompensationResult, Compensator, run_compensation
from ranvier.stores.base import PersistenceStore


async def cancel(store: PersistenceStore, trace_id: str) -> bool:
    """Complete the trace as CANCELLED; works from any process.

    A worker running the trace finds out at its next checkpoint (the store answers
    `TraceCompleted`), stops at that step boundary and reports it as cancelled.
    Returns False if it was cancelled already; `TraceCompleted` if it ended otherwise.
    """
    trace = await store.load(trace_id)
    if trace is None:
        raise TraceNotFound(f"no trace is stored under {trace_id!r}")
    if trace.completion is CompletionState.CANCELLED:
        return False
    await store.complete(trace_id, CompletionState.CANCELLED)
    return True


async def compensate(
    store: PersistenceStore,
    trace_id: str,
    hook: Compensator,
    *,
    retry: RetryPolicy | None = None,
    resources: Mapping[str, Any] | None = None,
) -> CompensationResult:
    """Run the compensation of a trace completed as FAULT (when auto-compensation is off).

    The same at-most-once claim applies; on success the trace becomes COMPENSATED.
    """
    trace = await store.load(trace_id)
    if trace is None:
        raise TraceNotFound(f"no trace is stored under {trace_id!r}")
    if trace.completion not in (CompletionState.FAULT, CompletionState.COMPENSATED):
        raise InvalidInput(
            f"trace {trace_id!r} is {trace.completion or 'not completed'}; only a trace "
            "completed as fault can be compensated by hand"
        )
    context = replace(_context_of(trace), resources=resources or {})
    result, _ = await run_compensation(store, context, hook, retry or RetryPolicy())
    done = (CompensationResult.COMPENSATED, CompensationResult.ALREADY_COMPENSATED)
    if result in done and trace.completion is CompletionState.FAULT:
        await store.complete(trace_id, CompletionState.COMPENSATED)
    return result


def _context_of(trace: PersistedTrace) -> CompensationContext:
    for event in reversed(trace.events):
        # a marker (no node: a failed hook's record) is not the run's fault
        if event.outcome_kind is OutcomeKind.FAULT and event.node_id is not None:
            payload = event.payload if isinstance(event.payload, dict) else {}
            return CompensationContext(
                trace_id=trace.trace_id,
                circuit=trace.circuit,
                fault_kind=str(payload.get("kind") or "fault"),
                fault_step=event.step,
            )
    raise InvalidInput(f"trace {trace.trace_id!r} has no Fault checkpoint to compensate")
