"""Group commit: appends from concurrent pipelines share one multi-row transaction.

Callers queue their item and wait on a future. A flush takes what is queued (at most
one item per trace, so rows of one batch never wait on each other, and none of a trace
that another batch in flight holds), runs it as one statement, and settles each
caller's future with that caller's own outcome: a rule that rejects one row fails
only that row's append. While `max_inflight` batches run, new items wait and form the
next, larger batch: under load batches grow, when idle an append runs at once.
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
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _closed: bool = False
    _start_scheduled: bool = False

    async def submit(self, key: str, item: T) -> None:
        """Queue `item` (of trace `key`); returns once its row is committed, or raises."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, key, future))
        if not self._tasks:
            self._start_batches()  # idle: no reason to wait
        elif not self._start_scheduled:
            # a batch is in flight: start the next one after the tasks that are ready to
            # run now (callers the last batch just released) have queued their appends
            self._start_scheduled = True
            asyncio.get_running_loop().call_soon(self._start_batches)
        await future

    def _start_batches(self) -> None:
        self._start_scheduled = False
        while self._queue and len(self._tasks) < self.max_inflight:
            batch = self._take()
            if not batch:
                return
            task = asyncio.create_task(self._run(batch))
            self._tasks.add(task)

    def _take(self) -> list[_Pending[T]]:
        batch: list[_Pending[T]] = []
        keep: deque[_Pending[T]] = deque()
        for pending in self._queue:
            if pending.future.done():
                continue  # its caller was cancelled before the batch took it
            if len(batch) < self.max_batch and pending.key not in self._busy:
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
                self._tasks.discard(task)
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
