"""Group commit: appends from concurrent pipelines share one multi-row transaction.

Callers queue their item and wait on a future. A flush takes what is queued (at most
one item per trace, so rows of one batch never wait on each other, and none of a trace
that another batch in flight holds), runs it as one statement, and settles each
caller's future with that caller's own outcome: a rule that rejects one row fails
only that row's append. While `max_inflight` batches run, new items wait and form the
next, larger batch: under load batches grow, when idle an append runs at once, in the
caller's own task (no task, future or extra event-loop turns: the sequential path costs
what the statement costs).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from ranvier.errors import StoreUnavailable

T = TypeVar("T")


class Retry:
    """A flush result: the row could not be settled in this batch; queue it again."""


RETRY = Retry()
MAX_RETRIES = 20
Result = BaseException | Retry | None
Flush = Callable[[Sequence[T]], Awaitable[Sequence[Result]]]


@dataclass(slots=True)
class _Pending(Generic[T]):
    item: T
    key: str
    future: asyncio.Future[None]
    retries: int = 0


@dataclass(slots=True)
class GroupCommit(Generic[T]):
    flush: Flush[T]
    max_batch: int = 256
    max_inflight: int = 4
    _queue: deque[_Pending[T]] = field(default_factory=deque)
    _busy: set[str] = field(default_factory=set)
    _tasks: dict[asyncio.Task[None], int] = field(default_factory=dict)
    """The batches in flight, with their sizes."""
    _closed: bool = False
    _start_scheduled: bool = False
    _inline: int = 0
    """Flushes running in their caller's task (at most one: only when idle)."""

    async def submit(self, key: str, item: T) -> None:
        """Queue `item` (of trace `key`); returns once its row is committed, or raises."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        retries = 0
        if not self._tasks and not self._inline and not self._queue:
            # idle: flush it here, a batch of one; appends arriving meanwhile queue up
            result = await self._run_inline(key, item)
            if not isinstance(result, Retry):
                if result is not None:
                    raise result
                return
            retries = 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, key, future, retries))
        if not self._tasks and not self._inline:
            self._start_batches()  # idle: no reason to wait
        elif not self._start_scheduled:
            # a batch is in flight: start the next one after the tasks that are ready to
            # run now (callers the last batch just released) have queued their appends
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batches)
        await future

    async def _run_inline(self, key: str, item: T) -> Result:
        self._inline += 1
        self._busy.add(key)
        try:
            results = await self.flush([item])
        finally:
            self._busy.discard(key)
            self._inline -= 1
            if self._queue and not self._closed and not self._start_scheduled:
                self._start_scheduled = True  # what queued meanwhile forms the next batch
                asyncio.get_running_loop().call_soon(self._start_batches)
        return results[0]

    def _start_batches(self) -> None:
        self._start_scheduled = False
        while self._queue:
            inflight = len(self._tasks) + self._inline
            if inflight >= self.max_inflight:
                return
            if inflight and len(self._queue) * 4 < max(self._tasks.values(), default=1):
                # far smaller than the batch in flight: wait for it and join the next one,
                # else a large and a small batch keep alternating and commits are wasted
                return
            # share what is queued between the free slots: batches of even size pipeline
            share = -(-len(self._queue) // (self.max_inflight - inflight))
            batch = self._take(min(share, self.max_batch))
            if not batch:
                return
            task = asyncio.create_task(self._run(batch))
            self._tasks[task] = len(batch)

    def _take(self, limit: int) -> list[_Pending[T]]:
        batch: list[_Pending[T]] = []
        keep: deque[_Pending[T]] = deque()
        for pending in self._queue:
            if pending.future.done():
                continue  # its caller was cancelled before the batch took it
            if len(batch) < limit and pending.key not in self._busy:
                self._busy.add(pending.key)
                batch.append(pending)
            else:
                keep.append(pending)
        self._queue = keep
        return batch

    async def _run(self, batch: list[_Pending[T]]) -> None:
        try:
            results: Sequence[Result] = await self.flush([p.item for p in batch])
        except BaseException as exc:  # the whole batch failed: every caller learns why
            results = [_copy(exc) for _ in batch]
        finally:
            self._busy.difference_update(p.key for p in batch)
            task = asyncio.current_task()
            if task is not None:
                self._tasks.pop(task, None)
        requeue = [p for p, r in zip(batch, results, strict=True) if isinstance(r, Retry)]
        for pending, result in zip(batch, results, strict=True):
            if not isinstance(result, Retry):
                _settle(pending.future, result)
        for pending in reversed(requeue):
            pending.retries += 1
            if pending.retries > MAX_RETRIES:
                _settle(pending.future, StoreUnavailable("append could not be settled"))
            else:
                self._queue.appendleft(pending)
        if not self._closed and not self._start_scheduled:
            # after the callers just settled have run: their next appends join the batch
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batches)

    async def close(self) -> None:
        """Let the batches in flight finish; fail what is still queued."""
        self._closed = True
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._queue:
            _settle(self._queue.popleft().future, StoreUnavailable("the store was closed"))


def _copy(exc: BaseException) -> BaseException:
    """One exception per caller: a shared instance would collect every caller's traceback."""
    if isinstance(exc, asyncio.CancelledError):
        copy: BaseException = StoreUnavailable("the append was cancelled with its batch")
    elif isinstance(exc, StoreUnavailable):
        copy = StoreUnavailable(str(exc))
    else:
        return exc
    copy.__cause__ = exc.__cause__ or exc
    return copy


def _settle(future: asyncio.Future[None], result: BaseException | None) -> None:
    if future.done():
        return
    if result is None:
        future.set_result(None)
    else:
        future.set_exception(result)
