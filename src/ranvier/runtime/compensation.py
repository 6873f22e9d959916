"""Compensation: undo a faulted run's side effects, at most once per fault key.

The key "{trace_id}:{circuit}:{fault_kind}" is claimed in the store's compensation
idempotency store *before* the hook runs. A second claim (a repeated fault, another
worker, a re-run after a crash) returns False and the hook does not run again. A claim
whose hook never finished stays visible (`store.compensations.list_unfinished()`); it
runs again only after an operator releases it (`store.compensations.release(key)`).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from enum import StrEnum

from ranvier import metrics
from ranvier.model import CompensationContext
from ranvier.runtime.checkpoint import RetryPolicy
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.runtime")

Compensator = Callable[[CompensationContext], Awaitable[None] | None]
"""A compensation hook: sync or async, takes the `CompensationContext`."""


class CompensationResult(StrEnum):
    COMPENSATED = "compensated"
    """The hook ran now and succeeded."""
    ALREADY_COMPENSATED = "already_compensated"
    """An earlier run compensated this key; the hook did not run again."""
    FAILED = "failed"
    """The hook raised on every attempt; the claim stays for an operator to look at."""
    UNFINISHED = "unfinished"
    """The key was claimed before but its hook never finished; an operator decides."""


def compensation_key(trace_id: str, circuit: str, fault_kind: str) -> str:
    return f"{trace_id}:{circuit}:{fault_kind}"


COMPENSATION_FAILED = "compensation_failed"
"""The fault kind of the marker a failed hook leaves after the run's fault."""


async def run_compensation(
    store: PersistenceStore,
    context: CompensationContext,
    hook: Compensator,
    retry: RetryPolicy,
) -> tuple[CompensationResult, BaseException | None]:
    """Claim the fault's key, run the hook under `retry`, mark it compensated.

    Returns the result and, when the hook failed, its last exception.
    """
    key = compensation_key(context.trace_id, context.circuit, context.fault_kind)
    ledger = store.compensations
    if not await ledger.claim(key):
        if await ledger.was_compensated(key):
            return CompensationResult.ALREADY_COMPENSATED, None
        log.warning("compensation %s was claimed before and never finished", key)
        return CompensationResult.UNFINISHED, None
    error = await _call_with_retry(hook, context, retry, key)
    if error is not None:
        metrics.COMPENSATIONS.labels(context.circuit, "failed").inc()
        return CompensationResult.FAILED, error
    await ledger.mark_compensated(key)
    metrics.COMPENSATIONS.labels(context.circuit, "compensated").inc()
    return CompensationResult.COMPENSATED, None


async def _call_with_retry(
    hook: Compensator, context: CompensationContext, retry: RetryPolicy, key: str
) -> BaseException | None:
    """None once the hook succeeded, else the exception of its last attempt."""
    for attempt in range(1, retry.attempts + 1):
        try:
            result = hook(context)
            if inspect.isawaitable(result):
                await result
            return None
        except Exception as exc:
            last = attempt == retry.attempts
            log.log(
                logging.ERROR if last else logging.WARNING,
                "compensation hook failed trace_id=%s key=%s fault_step=%d attempt=%d/%d: %r",
                context.trace_id,
                key,
                context.fault_step,
                attempt,
                retry.attempts,
                exc,
                exc_info=exc if last else None,
            )
            if last:
                return exc
            await asyncio.sleep(retry.delay(attempt - 1))
    raise AssertionError("RetryPolicy.attempts is at least 1")
