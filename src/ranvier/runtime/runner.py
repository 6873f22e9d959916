"""Driving one trace: run steps, checkpoint each, then finish (complete or compensate).

The hot loop is kept lean: per step one `StepContext`, one envelope, one append.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import CoroutineType
from typing import Any

from ranvier.errors import InvalidInput, LeaseLost, RanvierError, TraceCompleted
from ranvier.model import (
    CompensationContext,
    CompletionState,
    JSONValue,
    OutcomeKind,
    PersistenceEnvelope,
)
from ranvier.runtime.checkpoint import (
    Checkpointer,
    CheckpointPolicy,
    PersistenceUnavailable,
    RetryPolicy,
)
from ranvier.runtime.compensation import (
    COMPENSATION_FAILED,
    CompensationResult,
    Compensator,
    compensation_key,
    run_compensation,
)
from ranvier.runtime.context import StepContext
from ranvier.runtime.lease import LeaseKeeper
from ranvier.runtime.outcome import Outcome, format_traceback
from ranvier.runtime.plan import Plan, stored_outcome
from ranvier.runtime.result import RunResult, RunStatus
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.runtime")

_NEXT = OutcomeKind.NEXT


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    fn: Callable[[Any, StepContext], Any]
    is_async: bool
    retry: RetryPolicy | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunConfig:
    """Everything a run needs from its axon (set once per axon, read per step)."""

    circuit: str
    version: str
    steps: tuple[StepSpec, ...]
    index: Mapping[str, int]
    checkpoint: CheckpointPolicy
    compensation_retry: RetryPolicy
    auto_complete: bool
    auto_compensate: bool


class Runner:
    """Drives one trace under a held lease; `execute` never leaves the lease held."""

    def __init__(
        self,
        config: RunConfig,
        store: PersistenceStore,
        trace_id: str,
        keeper: LeaseKeeper,
        resources: Mapping[str, Any],
        compensation: Compensator | None,
    ) -> None:
        self.config = config
        self.store = store
        self.trace_id = trace_id
        self.keeper = keeper
        self.resources = resources
        self.compensation = compensation
        self.cp = Checkpointer(store, config.circuit, trace_id, config.checkpoint)
        self.steps_run = 0
        self.resumed = False

    async def execute(self, plan: Plan) -> RunResult:
        try:
            return await self._drive(plan)
        except LeaseLost as exc:
            self.keeper.lost = exc
            log.error("run stopped: lease lost trace_id=%s: %s", self.trace_id, exc)
            return self._result(RunStatus.LEASE_LOST, Outcome.fault("lease_lost", str(exc)), None)
        except PersistenceUnavailable as exc:
            log.error("run end not recorded trace_id=%s: %s", self.trace_id, exc)
            fault = Outcome.fault("persistence_unavailable", str(exc))
            return self._result(RunStatus.UNRECORDED, fault, None)
        except TraceCompleted:
            return await self._completed_elsewhere()
        except asyncio.CancelledError:
            await self._complete_quietly(CompletionState.CANCELLED)
            raise
        except BaseException:
            await self._complete_quietly(CompletionState.FAULT)
            raise
        finally:
            await self.keeper.release()

    async def _drive(self, plan: Plan) -> RunResult:
        if plan.completion is not None:
            assert plan.finish is not None
            return self._result(RunStatus.COMPLETED, plan.finish, plan.completion)
        if plan.rewind_to is not None:
            rewind, fence = plan.rewind_to, self.keeper.token
            await self.cp.call(
                rewind, lambda: self.store.resume(self.trace_id, rewind, fence=fence)
            )
        if plan.index is None:
            assert plan.finish is not None
            return await self._finish(plan.finish, plan.seq)
        outcome, seq = await self._steps(plan.index, plan.value, plan.seq)
        return await self._finish(outcome, seq)

    async def _steps(self, index: int, value: JSONValue, seq: int) -> tuple[Outcome, int]:
        """Run steps from `index` until one ends the run; returns its outcome and seq."""
        config, keeper, cp = self.config, self.keeper, self.cp
        steps, n = config.steps, len(config.steps)
        while True:
            keeper.check()
            step = steps[index]
            out = await self._call(step, value, seq)
            if type(out) is Outcome:
                kind, payload = out.kind, out.checkpoint_payload()
            else:  # a plain value: Next, without building an Outcome on the hot path
                kind, payload, value = _NEXT, out, out
            index += 1
            if kind is OutcomeKind.JUMP:
                target = config.index.get(out.target or "")
                if target is None:
                    out = Outcome.fault("InvalidJump", f"no step named {out.target!r}")
                    kind, payload = OutcomeKind.FAULT, out.checkpoint_payload()
                else:
                    index = target
            try:
                stored = self._envelope(seq, step.name, kind, payload)
                await cp.append(stored, keeper.token)
            except (InvalidInput, PersistenceUnavailable) as exc:
                # not JSON (the step's bug) or the store is gone (halt): the run faults
                what = (
                    "InvalidInput" if isinstance(exc, InvalidInput) else "persistence_unavailable"
                )
                fault = Outcome.fault(what, str(exc))
                await self._append_fault(seq, step.name, fault)
                return fault, seq
            self.steps_run += 1
            if kind is OutcomeKind.BRANCH or kind is OutcomeKind.FAULT or index >= n:
                return (out if type(out) is Outcome else Outcome(_NEXT, out)), seq
            if kind is not _NEXT:
                value = out.value
            seq += 1

    async def _call(self, step: StepSpec, value: JSONValue, seq: int) -> Any:
        """The step's return value (a plain value or an Outcome); exceptions are faults."""
        attempts = step.retry.attempts if step.retry is not None else 1
        attempt = 1
        while True:
            ctx = StepContext(self.trace_id, seq, step.name, attempt, self.resources)
            try:
                out = step.fn(value, ctx)
                if step.is_async or type(out) is CoroutineType:
                    out = await out
                return out
            except Exception as exc:
                if attempt >= attempts or step.retry is None:
                    log.error(
                        "step failed trace_id=%s step=%d node=%s attempt=%d: %r",
                        self.trace_id,
                        seq,
                        step.name,
                        attempt,
                        exc,
                        exc_info=exc,
                    )
                    return Outcome.from_exception(exc)
                log.warning("step %s failed (attempt %d): %r", step.name, attempt, exc)
                await asyncio.sleep(step.retry.delay(attempt - 1))
                attempt += 1

    def _envelope(
        self, seq: int, node: str | None, kind: OutcomeKind, payload: JSONValue
    ) -> PersistenceEnvelope:
        return PersistenceEnvelope(
            trace_id=self.trace_id,
            circuit=self.config.circuit,
            schematic_version=self.config.version,
            step=seq,
            outcome_kind=kind,
            node_id=node,
            payload=payload,
        )

    async def _append_fault(self, seq: int, node: str, fault: Outcome) -> None:
        envelope = self._envelope(seq, node, fault.kind, fault.checkpoint_payload())
        fence = self.keeper.token
        await self.cp.call(seq, lambda: self.store.append(envelope, fence=fence))

    async def _finish(self, outcome: Outcome, seq: int) -> RunResult:
        self.keeper.check()
        kind = outcome.kind
        if kind is OutcomeKind.FAULT:
            return await self._compensate(outcome, seq)
        if kind is OutcomeKind.COMPENSATED:
            return await self._complete(CompletionState.COMPENSATED, outcome)
        if kind is OutcomeKind.CANCELLED:
            return await self._complete(CompletionState.CANCELLED, outcome)
        return await self._complete(CompletionState.SUCCESS, outcome)

    async def _compensate(self, fault: Outcome, seq: int) -> RunResult:
        hook = self.compensation
        if hook is None or not self.config.auto_compensate:
            return await self._complete(CompletionState.FAULT, fault)
        context = CompensationContext(
            trace_id=self.trace_id,
            circuit=self.config.circuit,
            fault_kind=fault.fault_kind or "fault",
            fault_step=seq,
            resources=self.resources,
        )
        if fault.fault_kind == COMPENSATION_FAILED:  # resumed after the hook failed
            return await self._complete(CompletionState.FAULT, fault)
        result, error = await self.cp.call(
            seq,
            lambda: run_compensation(self.store, context, hook, self.config.compensation_retry),
        )
        if result is CompensationResult.UNFINISHED:
            return self._result(RunStatus.COMPENSATING, fault, None)
        if result is CompensationResult.FAILED:
            assert error is not None
            failed = Outcome.fault(
                COMPENSATION_FAILED,
                f"the compensation of fault {context.fault_kind!r} failed: {error!r}",
                traceback=format_traceback(error),
            )
            self.keeper.check()
            await self._append_marker(seq + 1, failed)
            return await self._complete(CompletionState.FAULT, fault)
        self.keeper.check()
        key = compensation_key(context.trace_id, context.circuit, context.fault_kind)
        marker = Outcome(OutcomeKind.COMPENSATED, None, key)
        await self._append_marker(seq + 1, marker)
        return await self._complete(CompletionState.COMPENSATED, fault)

    async def _append_marker(self, seq: int, marker: Outcome) -> None:
        envelope = self._envelope(seq, None, marker.kind, marker.checkpoint_payload())
        fence = self.keeper.token
        await self.cp.call(seq, lambda: self.store.append(envelope, fence=fence))

    async def _complete(self, state: CompletionState, outcome: Outcome) -> RunResult:
        if not self.config.auto_complete:
            return self._result(RunStatus.COMPLETED, outcome, None)
        keeper = self.keeper
        fence = keeper.token
        # no renewal may be in flight when the write that releases the lease lands (it
        # would fail and count as a lost lease); the lease has most of its ttl left
        await keeper.stop()
        # a retry after an unknown outcome is a no-op success (same state, completed)
        await self.cp.call(None, lambda: self.store.complete(self.trace_id, state, fence=fence))
        keeper.completed()  # released by the store with the completion: no release call
        return self._result(RunStatus.COMPLETED, outcome, state)

    async def _complete_quietly(self, state: CompletionState) -> None:
        """Best effort on an abnormal end (cancellation, a bug): never masks the error."""
        if not self.config.auto_complete or self.keeper.lost is not None:
            return
        try:
            complete = self.store.complete(self.trace_id, state, fence=self.keeper.token)
            await asyncio.shield(complete)
        except (RanvierError, OSError, asyncio.CancelledError) as exc:
            log.warning("could not complete trace_id=%s as %s: %s", self.trace_id, state, exc)

    async def _completed_elsewhere(self) -> RunResult:
        """Completed under us (cancelled by `cancel()`): stop and report what is stored."""
        trace = await self.store.load(self.trace_id)
        if trace is None or trace.completion is None:
            raise TraceCompleted(f"trace {self.trace_id!r} changed under the run")
        log.info("run stopped: trace_id=%s completed as %s", self.trace_id, trace.completion)
        return self._result(RunStatus.COMPLETED, stored_outcome(trace), trace.completion)

    def _result(
        self, status: RunStatus, outcome: Outcome, completion: CompletionState | None
    ) -> RunResult:
        return RunResult(
            trace_id=self.trace_id,
            status=status,
            outcome=outcome,
            completion=completion,
            steps_run=self.steps_run,
            resumed=self.resumed,
        )
