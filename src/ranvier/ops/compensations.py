"""The compensation ledger for operators: list claims, release one, retry a trace's hook.

A claim whose hook never finished (the worker died in it, or the hook failed on every
attempt) stays until an operator decides: if the effect happened, nothing to do but mark
it; if not, release it so that the hook may run again, or retry it at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.errors import InvalidInput, TraceNotFound
from ranvier.model import CompensationRecord, CompletionState, OutcomeKind, PersistedTrace
from ranvier.runtime import App, CompensationResult, compensate, compensation_key
from ranvier.stores.base import PersistenceStore


async def unfinished(store: PersistenceStore, *, limit: int) -> list[CompensationRecord]:
    """Claims whose hook never finished, oldest first."""
    return await store.compensations.list_unfinished(limit=limit)


async def release(store: PersistenceStore, key: str) -> bool:
    """Drop an unfinished claim (True) so its hook may run again; a compensated key is
    never released (False)."""
    return await store.compensations.release(key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Retried:
    trace_id: str
    key: str
    released: bool
    result: str
    """The hook's outcome (compensated, failed, ...) or the resumed run's completion."""


async def retry(store: PersistenceStore, trace_id: str, app: App) -> Retried:
    """Release the trace's unfinished claim and run its hook again now, in this process,
    with the pipeline's hook and the app's resources."""
    trace = await _load(store, trace_id)
    axon = next((a for a in app.pipelines if a.name == trace.circuit), None)
    if axon is None or axon.compensation is None:
        raise InvalidInput(
            f"--app has no pipeline {trace.circuit!r} with a compensation hook for {trace_id!r}"
        )
    key = compensation_key(trace_id, trace.circuit, _fault_kind(trace))
    released = await store.compensations.release(key)
    async with app.open_resources() as resources:
        if trace.completion is None:  # the run waits on the claim: resume it
            run = await axon.resume(trace_id, store=store, resources=resources)
            done = run.completion.value if run.completion else run.status.value
            return Retried(trace_id=trace_id, key=key, released=released, result=done)
        outcome = await compensate(
            store, trace_id, axon.compensation, retry=axon.compensation_retry, resources=resources
        )
    return Retried(trace_id=trace_id, key=key, released=released, result=outcome.value)


async def _load(store: PersistenceStore, trace_id: str) -> PersistedTrace:
    trace = await store.load(trace_id)
    if trace is None:
        raise TraceNotFound(f"no trace is stored under {trace_id!r}")
    if trace.completion not in (None, CompletionState.FAULT):
        raise InvalidInput(
            f"trace {trace_id!r} is {trace.completion.value}: only a faulted trace, or one "
            "waiting on an unfinished compensation, has a hook to retry"
        )
    return trace


def _fault_kind(trace: PersistedTrace) -> str:
    for event in reversed(trace.events):
        if event.outcome_kind is OutcomeKind.FAULT and event.node_id is not None:
            payload = event.payload if isinstance(event.payload, dict) else {}
            return str(payload.get("kind") or "fault")
    raise InvalidInput(f"trace {trace.trace_id!r} has no fault to compensate")


__all__ = ["CompensationResult", "Retried", "release", "retry", "unfinished"]
