"""Retention: purge completed traces and compensation keys past a window.

The cutoff comes from the store's clock (`store.now_ms()`), never this machine's. What a
purge removes is counted by the store (`count_completed_before`); the purge itself runs
as `purge_completed(cutoff, limit=batch)` calls, earliest completed first, so progress
shows batch by batch and no lock is held for more than a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ranvier.stores.base import PersistenceStore

Progress = Callable[[int], None]
DEFAULT_BATCH = 500
SQLITE_PAUSE_S = 0.1
"""SQLite writers poll a busy file lock every 100 ms once they have waited a while;
a pause that long between batches is what lets them in (measured: without it a
concurrent writer got no append through during a 100,000-event purge)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgePlan:
    cutoff_ms: int
    """Store clock minus the window: traces completed before it go."""
    traces: int
    """How many traces the purge removes (counted by the store)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeReport:
    cutoff_ms: int
    traces: int
    compensation_keys: int
    """Compensation keys removed (finished ones only), or that would be on a dry run."""
    dry_run: bool


def _noop(_: int) -> None:
    return None


async def plan(store: PersistenceStore, window_ms: int) -> PurgePlan:
    """Which traces a purge of `window_ms` removes: completed before store-now - window."""
    cutoff = await store.now_ms() - window_ms
    return PurgePlan(cutoff_ms=cutoff, traces=await store.count_completed_before(cutoff))


async def purge(
    store: PersistenceStore,
    window_ms: int,
    *,
    batch_size: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: Progress = _noop,
    planned: PurgePlan | None = None,
    pause_s: float | None = None,
) -> PurgeReport:
    """Remove completed traces and compensation keys older than `window_ms`.

    `pause_s` sleeps between batches: on SQLite, whose writers take the whole file's
    lock, it leaves room for the application's checkpoints during a large purge
    (default: SQLITE_PAUSE_S on SQLite, none elsewhere).
    """
    if pause_s is None:
        pause_s = SQLITE_PAUSE_S if store.adapter == "sqlite" else 0.0
    todo = planned or await plan(store, window_ms)
    if dry_run:
        keys = await store.compensations.count_older_than_ms(todo.cutoff_ms)
        return PurgeReport(
            cutoff_ms=todo.cutoff_ms, traces=todo.traces, compensation_keys=keys, dry_run=True
        )
    removed = 0
    while True:
        count = await store.purge_completed(todo.cutoff_ms, batch_size=batch_size, limit=batch_size)
        removed += count
        progress(count)
        if count < batch_size:
            break
        if pause_s:
            await asyncio.sleep(pause_s)
    keys = await store.compensations.purge_older_than_ms(todo.cutoff_ms)
    return PurgeReport(
        cutoff_ms=todo.cutoff_ms, traces=removed, compensation_keys=keys, dry_run=False
    )
