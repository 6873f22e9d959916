"""Writing checkpoints: retry with backoff on `StoreUnavailable`, then halt or continue.

This is the runbook's Scenarios B and C in one place. Retrying is safe because an
identical re-append is a no-op in every store (the write may have landed before the
connection broke). Only `StoreUnavailable` is retried: every other error is an answer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from ranvier import metrics
from ranvier.errors import InvalidInput, StoreUnavailable
from ranvier.model import PersistenceEnvelope
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.runtime")
T = TypeVar("T")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """`attempts` tries in all, sleeping `base_delay_s * factor**n` after failure n (0-based)."""

    attempts: int = 3
    base_delay_s: float = 0.1
    factor: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay_s < 0 or self.factor < 1:
            raise InvalidInput("RetryPolicy needs attempts >= 1, base_delay_s >= 0, factor >= 1")

    def delay(self, failure: int) -> float:
        return float(self.base_delay_s * self.factor**failure)


class OnFailure(StrEnum):
    HALT = "halt"
    """End the run as Fault("persistence unavailable: ..."); no further step runs."""
    CONTINUE = "continue"
    """Run on without the checkpoint: only for idempotent pipelines."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointPolicy:
    """What happens when the store cannot take a checkpoint (runbook Scenarios B, C)."""

    retry: RetryPolicy = RetryPolicy()
    on_failure: OnFailure = OnFailure.HALT


class PersistenceUnavailable(Exception):
    """Internal: the retries are spent and the policy is `halt`."""

    def __init__(self, cause: StoreUnavailable) -> None:
        super().__init__(f"persistence unavailable: {cause}")
        self.cause = cause


_METRIC_CHILDREN: dict[tuple[str, str], tuple[Any, Any]] = {}
"""(circuit, adapter) -> labelled metrics: `labels()` takes a lock, so once per pair."""


class Checkpointer:
    """Writes one trace's checkpoints and completion under a retry policy."""

    __slots__ = ("_failures", "_latency", "_policy", "_store", "circuit", "trace_id")

    def __init__(
        self, store: PersistenceStore, circuit: str, trace_id: str, policy: CheckpointPolicy
    ) -> None:
        self._store = store
        self._policy = policy
        self.circuit = circuit
        self.trace_id = trace_id
        labels = (circuit, getattr(store, "adapter", type(store).__name__))
        children = _METRIC_CHILDREN.get(labels)
        if children is None:
            children = _METRIC_CHILDREN[labels] = (
                metrics.CHECKPOINT_LATENCY.labels(*labels),
                metrics.CHECKPOINT_FAILURES.labels(*labels),
            )
        self._latency: Any = children[0]
        self._failures: Any = children[1]

    async def append(self, envelope: PersistenceEnvelope, fence: int | None) -> bool:
        """Store the checkpoint: True once stored, False if skipped under `continue`.

        Raises `PersistenceUnavailable` under `halt`; other store errors pass through.
        """
        start = time.perf_counter()
        try:
            await self._store.append(envelope, fence=fence)
        except StoreUnavailable as exc:
            try:
                await self._retry(
                    exc, envelope.step, lambda: self._store.append(envelope, fence=fence)
                )
            except PersistenceUnavailable:
                if self._policy.on_failure is OnFailure.HALT:
                    raise
                log.warning(
                    "checkpoint skipped (on_failure=continue) trace_id=%s step=%d",
                    self.trace_id,
                    envelope.step,
                )
                return False
        self._latency.observe(time.perf_counter() - start)
        return True

    async def call(self, step: int | None, op: Callable[[], Awaitable[T]]) -> T:
        """Another write (Fault event, completion, resume marker), retried; never skipped."""
        try:
            return await op()
        except StoreUnavailable as exc:
            return await self._retry(exc, step, op)

    async def _retry(
        self, exc: StoreUnavailable, step: int | None, op: Callable[[], Awaitable[T]]
    ) -> T:
        retry = self._policy.retry
        for failure in range(retry.attempts - 1):
            self._record_failure(exc, step, failure + 1)
            await asyncio.sleep(retry.delay(failure))
            try:
                return await op()
            except StoreUnavailable as again:
                exc = again
        self._record_failure(exc, step, retry.attempts)
        raise PersistenceUnavailable(exc) from exc

    def _record_failure(self, exc: StoreUnavailable, step: int | None, attempt: int) -> None:
        self._failures.inc()
        # `metric=checkpoint_failure`: the runbook's field for log-based alerting
        log.error(
            "checkpoint failed metric=checkpoint_failure trace_id=%s step=%s attempt=%d/%d: %s",
            self.trace_id,
            step,
            attempt,
            self._policy.retry.attempts,
            exc,
            extra={"metric": "checkpoint_failure", "trace_id": self.trace_id, "step": step},
        )
