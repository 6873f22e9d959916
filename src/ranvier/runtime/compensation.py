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


async def run_compensation(
    store: PersistenceStore,
    context: CompensationContext,
    hook: Compensator,
    retry: RetryPolicy,
) -> CompensationResult:
    """Claim the fault's key, run the hook under `retry`, mark it compensated."""
    key = compensation_key(context.trace_id, context.circuit, context.fault_kind)
    ledger = store.compensations
    if not await ledger.claim(key):
        if await ledger.was_compensated(key):
            return CompensationResult.ALREADY_COMPENSATED
        log.warning("compensation %s was claimed before and never finished", key)
        return CompensationResult.UNFINISHED
    if not await _call_with_retry(hook, context, retry, key):
        metrics.COMPENSATIONS.labels(context.circuit, "failed").inc()
        return CompensationResult.FAILED
    await ledger.mark_compensated(key)
    metrics.COMPENSATIONS.labels(context.circuit, "compensated").inc()
    return CompensationResult.COMPENSATED


async def _call_with_retry(
    hook: Compensator, context: CompensationContext, retry: RetryPolicy, key: str
) -> bool:
    for attempt in range(retry.attempts):
        try:
            result = hook(context)
            if inspect.isawaitable(result):
                await result
            return True
        except Exception as exc:
            log.error(
                "compensation hook failed key=%s attempt=%d/%d: %r",
                key,
                attempt + 1,
                retry.attempts,
                exc,
            )
            if attempt + 1 < retry.attempts:
                await asyncio.sleep(retry.delay(attempt))
    return False
