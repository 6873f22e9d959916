"""`recover`: resume the interrupted traces of known pipelines, from any number of workers.

Each trace is taken under its lease (`store.acquire_lease`): among all the workers
that try, exactly one wins and the others skip it. The winner reloads the trace (it
may have completed meanwhile) and resumes it under the lease it holds, so the store's
fencing token rejects the writes of any worker that lost the lease since.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing, suppress
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ranvier import metrics
from ranvier.errors import (
    InvalidInput,
    LeaseLost,
    RanvierError,
    StoreUnavailable,
    TraceNotFound,
    TracePoisoned,
    VersionMismatch,
)
from ranvier.model import CompletionState, Lease, TraceStatus, TraceSummary
from ranvier.runtime.axon import Axon
from ranvier.runtime.lease import default_holder
from ranvier.runtime.result import RunResult, RunStatus
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.recovery")

# Failures worth another try on the next `watch` pass; any other failure is settled.
_TRANSIENT = (StoreUnavailable, LeaseLost, OSError)
_RETRY_STATUSES = (RunStatus.LEASE_LOST, RunStatus.UNRECORDED)


class RecoveryAction(StrEnum):
    RESUMED = "resumed"
    """Resumed under its lease and driven to its end (see `completion`)."""
    SKIPPED = "skipped"
    """Another worker holds its lease, or it completed or vanished meanwhile."""
    UNKNOWN = "unknown"
    """No pipeline of its circuit was given, or no migration from its version: untouched."""
    FAILED = "failed"
    """The resume did not finish the trace (see `reason`); it stays resumable."""
    POISONED = "poisoned"
    """Started `max_attempts` times without completing: not resumed again automatically."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RecoveredTrace:
    """What `recover` did with one trace."""

    trace_id: str
    circuit: str
    action: RecoveryAction
    reason: str = ""
    completion: CompletionState | None = None
    steps_run: int = 0


@dataclass(slots=True, kw_only=True)
class RecoveryReport:
    """What one `recover` call did: counts, and the traces (most recent `keep`)."""

    resumed: int = 0
    skipped: int = 0
    unknown: int = 0
    failed: int = 0
    poisoned: int = 0
    passes: int = 0
    traces: list[RecoveredTrace] = field(default_factory=list)
    keep: int = 10_000

    def add(self, entry: RecoveredTrace) -> None:
        name = entry.action.value
        setattr(self, name, getattr(self, name) + 1)
        self.traces.append(entry)
        if len(self.traces) > self.keep:
            del self.traces[: len(self.traces) - self.keep]

    def ids(self, action: RecoveryAction | str) -> list[str]:
        """The ids of the kept traces that ended with `action` ("resumed", "failed"...)."""
        return [t.trace_id for t in self.traces if t.action == action]

    def __str__(self) -> str:
        lines = [
            f"recover: {self.resumed} resumed, {self.skipped} skipped, {self.unknown} "
            f"unknown, {self.failed} failed, {self.poisoned} poisoned "
            f"({self.passes} pass{'es' * (self.passes != 1)})"
        ]
        for t in self.traces:
            if t.action in _NOTEWORTHY:
                lines.append(f"  {t.action.value:<8} {t.trace_id} ({t.circuit}): {t.reason}")
        return "\n".join(lines)


_NOTEWORTHY = (RecoveryAction.UNKNOWN, RecoveryAction.FAILED, RecoveryAction.POISONED)


async def recover(
    store: PersistenceStore,
    axons: Iterable[Axon],
    *,
    resources: Mapping[str, Any] | None = None,
    concurrency: int = 8,
    batch_size: int = 100,
    watch: bool = False,
    poll_interval: float = 5.0,
    holder: str | None = None,
    stop: asyncio.Event | None = None,
) -> RecoveryReport:
    """Resume every interrupted trace (not completed, no live lease) of the given pipelines.

    Traces are listed `batch_size` at a time and resumed `concurrency` at a time, each
    under its lease; a trace another worker holds is skipped. Traces of other circuits,
    or of versions no pipeline migrates from, are reported and left untouched. With
    `watch`, it keeps looking every `poll_interval` seconds until `stop` is set. Setting
    `stop` (or cancelling) starts no new trace and lets the running ones finish, since
    cancelling a run would complete its trace as CANCELLED instead of leaving it resumable.

    `resources` are handed to the steps and hooks of every resumed run (`ctx.resources`).
    A trace started `max_attempts` times (a pipeline setting) without completing is
    reported as poisoned and not taken: fork it, cancel it or resume it with force.
    """
    if concurrency < 1 or batch_size < 1 or poll_interval <= 0:
        raise InvalidInput("recover needs concurrency >= 1, batch_size >= 1, poll_interval > 0")
    recovery = _Recovery(store, _by_circuit(axons), concurrency, batch_size, holder, stop)
    recovery.resources = resources or {}
    await recovery.run(watch, poll_interval)
    return recovery.report


def _by_circuit(axons: Iterable[Axon]) -> dict[str, Axon]:
    known: dict[str, Axon] = {}
    for axon in axons:
        if axon.name in known:
            raise InvalidInput(
                f"two pipelines named {axon.name!r} were given to recover; give only the "
                "newest version and register migrate_from() for the older ones"
            )
        known[axon.name] = axon
    if not known:
        raise InvalidInput("recover needs at least one pipeline (Axon)")
    return known


class _Recovery:
    """One `recover` call: its settings, its running tasks and its report."""

    def __init__(
        self,
        store: PersistenceStore,
        axons: dict[str, Axon],
        concurrency: int,
        batch_size: int,
        holder: str | None,
        stop: asyncio.Event | None,
    ) -> None:
        self.store = store
        self.axons = axons
        self.batch_size = batch_size
        self.holder = holder
        self.stop = stop or asyncio.Event()
        self.report = RecoveryReport()
        self.resources: Mapping[str, Any] = {}
        self.slots = asyncio.Semaphore(concurrency)
        self.running: set[asyncio.Task[None]] = set()
        self.active: set[str] = set()
        self.settled: set[str] = set()
        """Traces reported unknown or failed for good: not tried again by this call."""

    async def run(self, watch: bool, poll_interval: float) -> None:
        try:
            while True:
                await self._pass(raise_errors=not watch)
                if not watch or self.stop.is_set():
                    return
                await _wait(self.stop, poll_interval)
        except asyncio.CancelledError:
            self.stop.set()
            raise
        finally:
            await self._drain()
            log.info("%s", str(self.report).splitlines()[0])

    async def _pass(self, *, raise_errors: bool) -> None:
        """Start a resume for every interrupted trace listed (runs may outlast the pass)."""
        try:
            async with aclosing(self._candidates()) as candidates:
                async for summary in candidates:
                    await self.slots.acquire()
                    if self.stop.is_set():
                        self.slots.release()
                        break
                    self._start(summary)
        except (StoreUnavailable, OSError) as exc:
            if raise_errors:
                raise
            log.error("recover: cannot list interrupted traces (%s); retrying next pass", exc)
        self.report.passes += 1

    def _start(self, summary: TraceSummary) -> None:
        task = asyncio.get_running_loop().create_task(self._one(summary))
        self.running.add(task)
        self.active.add(summary.trace_id)
        task.add_done_callback(lambda t: self._done(t, summary.trace_id))

    def _done(self, task: asyncio.Task[None], trace_id: str) -> None:
        self.running.discard(task)
        self.active.discard(trace_id)
        self.slots.release()

    async def _drain(self) -> None:
        """Wait for the running resumes, even when cancelled (then re-raised after)."""
        cancelled = False
        while self.running:
            try:
                await asyncio.wait(set(self.running))  # never cancels what it waits for
            except asyncio.CancelledError:
                cancelled = True
                self.stop.set()
        if cancelled:
            raise asyncio.CancelledError

    async def _candidates(self) -> AsyncGenerator[TraceSummary, None]:
        """Interrupted traces, page by page; each page shuffled so workers rarely collide."""
        cursor: str | None = None
        while not self.stop.is_set():
            page = await self.store.list_traces(
                status=TraceStatus.INTERRUPTED, limit=self.batch_size, cursor=cursor
            )
            skip = self.settled | self.active
            items = [s for s in page.items if s.trace_id not in skip]
            random.shuffle(items)
            for summary in items:
                yield summary
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def _one(self, summary: TraceSummary) -> None:
        try:
            entry = await self._recover_trace(summary)
        except Exception as exc:  # a bug in a step's pipeline must not stop the others
            log.exception("recover: trace_id=%s failed", summary.trace_id)
            entry = _entry(summary, RecoveryAction.FAILED, f"{type(exc).__name__}: {exc}")
            if not isinstance(exc, _TRANSIENT):
                self.settled.add(summary.trace_id)
        self.report.add(entry)
        _log_entry(entry)

    async def _recover_trace(self, summary: TraceSummary) -> RecoveredTrace:
        axon = self.axons.get(summary.circuit)
        if axon is None:
            self.settled.add(summary.trace_id)
            reason = f"no pipeline named {summary.circuit!r} was given to recover"
            return _entry(summary, RecoveryAction.UNKNOWN, reason)
        if summary.attempts >= axon.max_attempts:
            return self._poisoned(summary, axon.max_attempts)
        # decided before the lease is taken: taking it counts an attempt, and a trace this
        # worker cannot run must stay untouched (not drift towards poisoned)
        trace = await self.store.load(summary.trace_id)
        if trace is None or trace.completion is not None:
            why = "deleted meanwhile" if trace is None else "completed meanwhile"
            return _entry(summary, RecoveryAction.SKIPPED, why)
        try:
            axon.check_resumable(trace)
        except VersionMismatch as exc:
            self.settled.add(summary.trace_id)
            return _entry(summary, RecoveryAction.UNKNOWN, str(exc))
        holder = self.holder or axon.lease.holder or default_holder()
        lease = await self.store.acquire_lease(summary.trace_id, holder, axon.lease.ttl_ms)
        if lease is None:
            return _entry(summary, RecoveryAction.SKIPPED, "another worker holds its lease")
        gone = await self._still_interrupted(lease)
        if gone is not None:
            return _entry(summary, RecoveryAction.SKIPPED, gone)
        return await self._resume(axon, summary, lease)

    def _poisoned(self, summary: TraceSummary, max_attempts: int) -> RecoveredTrace:
        self.settled.add(summary.trace_id)
        metrics.POISONED.labels(summary.circuit).inc()
        reason = (
            f"started {summary.attempts} times without completing (max_attempts="
            f"{max_attempts}): fork it, cancel it, or resume it with force"
        )
        return _entry(summary, RecoveryAction.POISONED, reason)

    async def _still_interrupted(self, lease: Lease) -> str | None:
        """Reload under the lease: None if it still needs resuming, else why not."""
        try:
            trace = await self.store.load(lease.trace_id)
        except BaseException:
            await _release(self.store, lease)
            raise
        if trace is not None and trace.completion is None:
            return None
        await _release(self.store, lease)
        return "deleted meanwhile" if trace is None else "completed meanwhile"

    async def _resume(self, axon: Axon, summary: TraceSummary, lease: Lease) -> RecoveredTrace:
        """Hand the lease to the run, which holds, renews and releases it."""
        try:
            result = await axon.resume(
                summary.trace_id, store=self.store, lease=lease, resources=self.resources
            )
        except VersionMismatch as exc:
            self.settled.add(summary.trace_id)
            return _entry(summary, RecoveryAction.UNKNOWN, str(exc))
        except TraceNotFound:
            return _entry(summary, RecoveryAction.SKIPPED, "deleted meanwhile")
        except TracePoisoned:  # other workers took it meanwhile
            return self._poisoned(summary, axon.max_attempts)
        except RanvierError as exc:
            if not isinstance(exc, _TRANSIENT):
                self.settled.add(summary.trace_id)
            return _entry(summary, RecoveryAction.FAILED, f"{type(exc).__name__}: {exc}")
        return self._judge(summary, result)

    def _judge(self, summary: TraceSummary, result: RunResult) -> RecoveredTrace:
        if result.status is RunStatus.COMPLETED:
            return RecoveredTrace(
                trace_id=summary.trace_id,
                circuit=summary.circuit,
                action=RecoveryAction.RESUMED,
                completion=result.completion,
                steps_run=result.steps_run,
            )
        if result.status not in _RETRY_STATUSES:
            self.settled.add(summary.trace_id)
        reason = f"{result.status.value}: {result.outcome.message or result.outcome.target}"
        return RecoveredTrace(
            trace_id=summary.trace_id,
            circuit=summary.circuit,
            action=RecoveryAction.FAILED,
            reason=reason,
            steps_run=result.steps_run,
        )


def _entry(summary: TraceSummary, action: RecoveryAction, reason: str) -> RecoveredTrace:
    return RecoveredTrace(
        trace_id=summary.trace_id, circuit=summary.circuit, action=action, reason=reason
    )


async def _release(store: PersistenceStore, lease: Lease) -> None:
    try:
        await store.release_lease(lease)
    except (RanvierError, OSError) as exc:  # it expires anyway
        log.warning("recover: lease release failed trace_id=%s: %s", lease.trace_id, exc)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


_LEVELS = {
    RecoveryAction.RESUMED: logging.INFO,
    RecoveryAction.SKIPPED: logging.DEBUG,
    RecoveryAction.UNKNOWN: logging.WARNING,
    RecoveryAction.FAILED: logging.ERROR,
    RecoveryAction.POISONED: logging.ERROR,
}


def _log_entry(entry: RecoveredTrace) -> None:
    log.log(
        _LEVELS[entry.action],
        "recover: %s trace_id=%s circuit=%s completion=%s steps_run=%d %s",
        entry.action.value,
        entry.trace_id,
        entry.circuit,
        entry.completion.value if entry.completion else "-",
        entry.steps_run,
        entry.reason,
    )
