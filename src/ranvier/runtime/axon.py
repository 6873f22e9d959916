"""`Axon`: a named, versioned chain of steps, run durably against a store."""

from __future__ import annotations

import asyncio
import inspect
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from ranvier.errors import CircuitMismatch, InvalidInput, TraceNotFound, TracePoisoned
from ranvier.model import JSONValue, Lease, PersistedTrace, TraceStart, now_ms
from ranvier.rules import validate_id, validate_positive
from ranvier.runtime.checkpoint import CheckpointPolicy, RetryPolicy
from ranvier.runtime.compensation import Compensator
from ranvier.runtime.fork import fork_trace
from ranvier.runtime.lease import LeaseKeeper, LeaseSettings
from ranvier.runtime.plan import Migration, Plan, plan_fresh, plan_resume
from ranvier.runtime.result import RunResult
from ranvier.runtime.runner import RunConfig, Runner, StepSpec
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import open_store

log = logging.getLogger("ranvier.runtime")
T = TypeVar("T")
Step = Callable[[Any, Any], Any]
"""A step: `(value, ctx) -> value | Outcome`, sync or async."""


class Axon:
    """A durable pipeline: `Axon("orders", version="1.0").then(validate).then(charge)`.

    Settings (all optional): `checkpoint` (retry and halt/continue policy),
    `compensation` (the hook run after a fault, in whichever process drives the trace),
    `compensation_retry`, `lease` (duration and renewal), `auto_complete` and
    `auto_compensate` (both on by default), `max_attempts` (starts and resumes without
    completing after which a trace is poisoned: no longer resumed automatically).
    """

    def __init__(
        self,
        name: str,
        version: str = "1",
        *,
        checkpoint: CheckpointPolicy | None = None,
        compensation: Compensator | None = None,
        compensation_retry: RetryPolicy | None = None,
        lease: LeaseSettings | None = None,
        auto_complete: bool = True,
        auto_compensate: bool = True,
        max_attempts: int = 5,
    ) -> None:
        self.name = validate_id("circuit", name)
        self.version = validate_id("version", version)
        self.checkpoint = checkpoint or CheckpointPolicy()
        self.compensation = compensation
        self.compensation_retry = compensation_retry or RetryPolicy()
        self.lease = lease or LeaseSettings()
        self.auto_complete = auto_complete
        self.auto_compensate = auto_compensate
        self.max_attempts = validate_positive("max_attempts", max_attempts)
        self._steps: list[StepSpec] = []
        self._migrations: dict[str, Migration] = {}
        self._config: RunConfig | None = None

    # --- building ---------------------------------------------------------------

    def then(
        self, step: Step, name: str | None = None, *, retry: RetryPolicy | None = None
    ) -> Axon:
        """Append a step (named after the function unless `name` is given); returns self."""
        name = validate_id("step name", name or getattr(step, "__name__", type(step).__name__))
        if name.startswith("("):
            raise InvalidInput(f"step name {name!r} cannot start with '(' (reserved)")
        if any(s.name == name for s in self._steps):
            raise InvalidInput(f"pipeline {self.name!r} already has a step named {name!r}")
        is_async = inspect.iscoroutinefunction(step) or inspect.iscoroutinefunction(
            getattr(step, "__call__", None)  # noqa: B004 - callable objects with async __call__
        )
        self._steps.append(StepSpec(name, step, is_async, retry))
        self._config = None
        return self

    def migrate_from(
        self,
        version: str,
        *,
        restart: bool = False,
        at: str | None = None,
        transform: Callable[[JSONValue], JSONValue] | None = None,
    ) -> Axon:
        """Let traces written by `version` resume here: from the start, or at step `at`."""
        if restart == (at is not None):
            raise InvalidInput("migrate_from needs exactly one of restart=True or at='<step>'")
        self._migrations[validate_id("version", version)] = Migration(
            from_version=version, restart=restart, at=at, transform=transform
        )
        return self

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self._steps)

    def index_of(self, name: str) -> int:
        index = self._run_config().index.get(name)
        if index is None:
            raise InvalidInput(
                f"pipeline {self.name!r} has no step named {name!r}; its steps are "
                f"{', '.join(self.step_names)}"
            )
        return index

    def _run_config(self) -> RunConfig:
        if self._config is None:
            if not self._steps:
                raise InvalidInput(f"pipeline {self.name!r} has no steps; add them with .then()")
            self._config = RunConfig(
                circuit=self.name,
                version=self.version,
                steps=tuple(self._steps),
                index={s.name: i for i, s in enumerate(self._steps)},
                checkpoint=self.checkpoint,
                compensation_retry=self.compensation_retry,
                auto_complete=self.auto_complete,
                auto_compensate=self.auto_compensate,
            )
        return self._config

    # --- running ----------------------------------------------------------------

    async def run(
        self,
        value: JSONValue,
        *,
        store: PersistenceStore,
        trace_id: str | None = None,
        resources: Mapping[str, Any] | None = None,
        compensation: None = None,
    ) -> RunResult:
        """Run the pipeline on `value` as trace `trace_id` (generated when None).

        The trace, its input and the lease are stored before the first step runs, so a
        run killed at any instant is resumed by `resume` or `recover`. A `trace_id` that
        is already stored is not started again: it is resumed (or, if completed, its
        stored result is returned), so a run's id is its idempotency key.
        """
        _refuse_hook(compensation)
        config = self._run_config()
        start = TraceStart(circuit=self.name, schematic_version=self.version, input=value)
        if trace_id is None:
            trace_id = uuid.uuid4().hex
            keeper = await LeaseKeeper.acquire(store, trace_id, self.lease, self.name, start)
            runner = Runner(config, store, trace_id, keeper, resources or {}, self.compensation)
            return await runner.execute(plan_fresh(value))
        return await self._drive(store, trace_id, None, resources, start=start)

    async def resume(
        self,
        trace_id: str,
        *,
        store: PersistenceStore,
        resources: Mapping[str, Any] | None = None,
        lease: Lease | None = None,
        force: bool = False,
        compensation: None = None,
    ) -> RunResult:
        """Continue an interrupted trace after its last checkpoint (runbook Scenario A).

        A pending intervention wins; a completed trace is returned as stored; a trace
        killed before its first checkpoint runs from the start with its stored input.
        A poisoned trace (started `max_attempts` times without completing) raises
        `TracePoisoned` unless `force`. `lease`: one already acquired for this trace
        (by `recover`), held and released here.
        """
        _refuse_hook(compensation)
        return await self._drive(store, trace_id, lease, resources, force=force)

    async def fork(
        self,
        source_trace_id: str,
        *,
        store: PersistenceStore,
        at: str,
        trace_id: str | None = None,
        value: JSONValue = None,
        resources: Mapping[str, Any] | None = None,
    ) -> RunResult:
        """Run a new trace that copies the source's checkpoints before step `at`, then runs
        `at` and the rest, with the previous checkpoint's value (or `value` if not None).

        The source is only read (kept for audit); the new trace records where it came
        from (`PersistedTrace.forked_from`). Steps before `at` do not run again.
        """
        self.index_of(at)
        source = await store.load(validate_id("trace_id", source_trace_id))
        if source is None:
            raise TraceNotFound(f"no trace is stored under {source_trace_id!r}; nothing to fork")
        self._check_circuit(source.circuit, source_trace_id)
        new_id = validate_id("trace_id", trace_id or uuid.uuid4().hex)
        # the local clock, as the checkpoints' timestamps: the intervention that starts the
        # fork stays pending until `at` checkpoints after it
        forked = fork_trace(source, new_id, at, value, self.version, now_ms())
        await store.import_trace(forked)
        log.info("trace_id=%s forked from %s at %s", new_id, source_trace_id, at)
        return await self._drive(store, new_id, None, resources)

    async def _drive(
        self,
        store: PersistenceStore,
        trace_id: str,
        lease: Lease | None,
        resources: Mapping[str, Any] | None,
        *,
        start: TraceStart | None = None,
        force: bool = False,
    ) -> RunResult:
        config = self._run_config()
        if lease is None:
            keeper = await LeaseKeeper.acquire(store, trace_id, self.lease, self.name, start)
        else:
            keeper = LeaseKeeper(store, lease, self.lease, self.name)
        runner = Runner(config, store, trace_id, keeper, resources or {}, self.compensation)
        try:
            plan, runner.resumed = await self._plan(store, trace_id, force=force)
        except BaseException:
            await keeper.release()
            raise
        return await runner.execute(plan)

    async def _plan(
        self, store: PersistenceStore, trace_id: str, *, force: bool
    ) -> tuple[Plan, bool]:
        """The plan, and whether the run continues an earlier one (not a fresh start)."""
        trace = await store.load(trace_id)
        if trace is None:
            raise TraceNotFound(f"no trace is stored under {trace_id!r}; nothing to resume")
        self._check_circuit(trace.circuit, trace_id)
        # the lease just taken counted one attempt: more than max_attempts means the
        # earlier ones already reached it
        if trace.completion is None and trace.attempts > self.max_attempts and not force:
            raise TracePoisoned(
                f"trace {trace_id!r} was started {trace.attempts - 1} times without "
                f"completing (max_attempts={self.max_attempts}); fix the cause, then fork "
                "it, cancel it, or resume it with force"
            )
        plan = plan_resume(trace, self.version, self.index_of, self._migrations, len(self._steps))
        fresh = trace.attempts == 1 and not trace.events and trace.forked_from is None
        return plan, not fresh

    def check_resumable(self, trace: PersistedTrace) -> None:
        """Raise what resuming `trace` here would raise before running anything:
        `CircuitMismatch`, `VersionMismatch` (no migration), `InvalidInput`."""
        self._check_circuit(trace.circuit, trace.trace_id)
        plan_resume(trace, self.version, self.index_of, self._migrations, len(self._steps))

    def _check_circuit(self, circuit: str, trace_id: str) -> None:
        if circuit != self.name:
            raise CircuitMismatch(
                f"trace {trace_id!r} belongs to pipeline {circuit!r}, not {self.name!r}"
            )

    # --- blocking helpers for scripts ---------------------------------------------

    def run_sync(
        self, value: JSONValue, *, store: PersistenceStore | str | None = None, **kwargs: Any
    ) -> RunResult:
        """`run` from synchronous code; `store` may be a URL (opened and closed here)."""
        return _blocking(store, lambda s: self.run(value, store=s, **kwargs))

    def resume_sync(
        self, trace_id: str, *, store: PersistenceStore | str | None = None, **kwargs: Any
    ) -> RunResult:
        """`resume` from synchronous code; `store` may be a URL (opened and closed here)."""
        return _blocking(store, lambda s: self.resume(trace_id, store=s, **kwargs))


def _refuse_hook(compensation: object) -> None:
    if compensation is not None:
        raise InvalidInput(
            "compensation= is not taken per call: a worker that recovers the trace could "
            "never know it. Give the hook to the pipeline: Axon(..., compensation=hook)"
        )


def _blocking(
    store: PersistenceStore | str | None, call: Callable[[PersistenceStore], Awaitable[T]]
) -> T:
    async def main() -> T:
        if store is not None and not isinstance(store, str):
            return await call(store)
        opened = await open_store(store)
        try:
            return await call(opened)
        finally:
            await opened.close()

    return asyncio.run(main())
