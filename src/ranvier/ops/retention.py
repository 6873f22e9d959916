"""Retention: purge completed traces and compensation keys past a window.

The cutoff comes from the store's clock (`store.now_ms()`), never this machine's. To
show progress the purge runs as a series of `purge_completed` calls with rising
cutoffs, each covering about one batch of traces, and ending at the real cutoff; each
call is itself batched by the adapter, so no lock is held for more than a batch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from ranvier.model import TraceStatus
from ranvier.ops.stores import iter_traces
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
    completed_at_ms: list[int]
    """completed_at of every trace the purge removes, ascending."""

    @property
    def traces(self) -> int:
        return len(self.completed_at_ms)


@dataclass(frozen=True, slots=True, kw_only=True)
class PurgeReport:
    cutoff_ms: int
    traces: int
    compensation_keys: int | None
    """Keys removed (None on a dry run when the store cannot count them)."""
    dry_run: bool


def _noop(_: int) -> None:
    return None


async def plan(store: PersistenceStore, window_ms: int) -> PurgePlan:
    """Which traces a purge of `window_ms` removes: completed before store-now - window."""
    cutoff = await store.now_ms() - window_ms
    stamps: list[int] = []
    # by completed_at, exactly as purge_completed decides (not by updated_at)
    async for summary in iter_traces(store, status=TraceStatus.COMPLETED):
        done = summary.completed_at_ms
        if done is not None and done < cutoff:
            stamps.append(done)
    stamps.sort()
    return PurgePlan(cutoff_ms=cutoff, completed_at_ms=stamps)


async def _count_keys(store: PersistenceStore, cutoff_ms: int) -> int | None:
    counter = getattr(store.compensations, "count_older_than_ms", None)
    return None if counter is None else int(await counter(cutoff_ms))


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
        keys = await _count_keys(store, todo.cutoff_ms)
        return PurgeReport(
            cutoff_ms=todo.cutoff_ms, traces=todo.traces, compensation_keys=keys, dry_run=True
        )
    removed = 0
    for index, step_cutoff in enumerate(_steps(todo, batch_size)):
        if index and pause_s:
            await asyncio.sleep(pause_s)
        count = await store.purge_completed(step_cutoff, batch_size=batch_size)
        removed += count
        progress(count)
    keys = await store.compensations.purge_older_than_ms(todo.cutoff_ms)
    return PurgeReport(
        cutoff_ms=todo.cutoff_ms, traces=removed, compensation_keys=keys, dry_run=False
    )


def _steps(todo: PurgePlan, batch_size: int) -> list[int]:
    """Rising cutoffs, each about one batch past the previous, ending at the real cutoff."""
    stamps = todo.completed_at_ms
    steps = [stamps[i] + 1 for i in range(batch_size - 1, len(stamps), batch_size)]
    return [*(s for s in steps if s < todo.cutoff_ms), todo.cutoff_ms]
