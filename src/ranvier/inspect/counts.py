"""Traces by status for the pages: one counting query in the store, reused for a while,
and never waited on for long.

Counting a large store takes a full pass over its traces (a few hundred milliseconds on
a million), while a page of the list takes a few. So a page shows counts that are fresh
(younger than the TTL, or counted within its short wait) and otherwise the last ones it
has, marked as being counted again; the count goes on in the background and the page
fetches `/counts` to swap them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ranvier.model import TraceStatus
from ranvier.stores.base import PersistenceStore

STATUSES = tuple(s.value for s in TraceStatus if s is not TraceStatus.COMPLETED)
OPEN = ("running", "interrupted")


@dataclass(frozen=True, slots=True, kw_only=True)
class Counts:
    """What a page shows; `values` is None until the first count is done."""

    values: Mapping[str, int] | None
    fresh: bool

    @property
    def total(self) -> int | None:
        return None if self.values is None else sum(self.values.values())

    @property
    def completed(self) -> int | None:
        if self.values is None:
            return None
        return sum(v for k, v in self.values.items() if k not in OPEN)

    def of(self, status: str) -> int | None:
        return None if self.values is None else self.values.get(status, 0)


class StatusCounts:
    """The counts of one store, shared by every request."""

    def __init__(self, store: PersistenceStore, *, ttl_s: float, wait_s: float) -> None:
        self._store, self._ttl_s, self._wait_s = store, ttl_s, wait_s
        self._values: dict[str, int] | None = None
        self._counted_at: float | None = None
        self._task: asyncio.Task[None] | None = None

    def _fresh(self) -> bool:
        at = self._counted_at
        return at is not None and time.monotonic() - at < self._ttl_s

    async def current(self, *, wait_s: float | None = None) -> Counts:
        """Fresh counts if they are, or become so within `wait_s` (default: the
        configured wait); else the last ones, stale, while the count goes on."""
        if self._fresh():
            return Counts(values=self._values, fresh=True)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._count())
        task = self._task
        try:
            await asyncio.wait_for(asyncio.shield(task), self._wait_s if wait_s is None else wait_s)
        except TimeoutError:
            return Counts(values=self._values, fresh=False)
        return Counts(values=self._values, fresh=True)

    async def _count(self) -> None:
        try:
            counted = await self._store.count_traces_by_status()
            self._values = {s: int(counted.get(TraceStatus(s), 0)) for s in STATUSES}
            self._counted_at = time.monotonic()
        finally:
            self._task = None

    def forget(self) -> None:
        """After an action: the next page counts again (showing these meanwhile)."""
        self._counted_at = None

    async def close(self) -> None:
        task = self._task
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
