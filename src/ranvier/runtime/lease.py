"""Holding a trace's lease while a run drives it (one live resumer per trace).

The lease is taken before the first step and given up at the end. A run that completes
gives it up in its fenced `complete` (the store releases it in the same atomic write),
so that run costs one lease round trip (the acquisition); every other ending (lease
lost, unrecorded, compensating, `auto_complete=False`, an exception) calls
`release_lease`. Renewal runs on a timer (`renew_every_ms`), never per step. When a
renewal fails the keeper marks the lease lost; the run checks `lost` at each step
boundary, and the store rejects any write under the stale fencing token anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass

from ranvier import metrics
from ranvier.errors import InvalidInput, LeaseLost, RanvierError, TraceBusy
from ranvier.model import Lease, TraceStart
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.runtime")


_holder: tuple[int, str] = (0, "")


def default_holder() -> str:
    """This worker's name in leases: host and process id (cached per process)."""
    global _holder
    pid = os.getpid()
    if _holder[0] != pid:  # first call, or a forked child
        _holder = (pid, f"{socket.gethostname()}:{pid}")
    return _holder[1]


@dataclass(frozen=True, slots=True, kw_only=True)
class LeaseSettings:
    """How long a run's lease lasts and how often it is renewed.

    A worker that stops (crash, pause) loses the trace after at most `ttl_ms`; keep
    `renew_every_ms` well under `ttl_ms` so that one slow renewal does not lose it.
    """

    ttl_ms: int = 30_000
    renew_every_ms: int = 10_000
    holder: str | None = None
    """The worker's name; default host:pid."""

    def __post_init__(self) -> None:
        if not 0 < self.renew_every_ms < self.ttl_ms:
            raise InvalidInput("LeaseSettings needs 0 < renew_every_ms < ttl_ms")


class LeaseKeeper:
    """Renews one lease in the background until released or lost."""

    def __init__(
        self, store: PersistenceStore, lease: Lease, settings: LeaseSettings, circuit: str
    ) -> None:
        self.lease = lease
        self.lost: BaseException | None = None
        self.released = False
        """The store released the lease (a fenced `complete` succeeded): no release call."""
        self._store = store
        self._settings = settings
        self._circuit = circuit
        self._task: asyncio.Task[None] | None = None
        self._timer = asyncio.get_running_loop().call_later(
            settings.renew_every_ms / 1000, self._start_renewal
        )

    @classmethod
    async def acquire(
        cls,
        store: PersistenceStore,
        trace_id: str,
        settings: LeaseSettings,
        circuit: str,
        start: TraceStart | None = None,
    ) -> LeaseKeeper:
        """Take the trace's lease; `TraceBusy` if another worker holds a live one.

        With `start`, a trace not stored yet is created with its input in the same write.
        """
        holder = settings.holder or default_holder()
        lease = await store.acquire_lease(trace_id, holder, settings.ttl_ms, start=start)
        if lease is None:
            raise TraceBusy(f"trace {trace_id!r} is being driven by another worker (live lease)")
        return cls(store, lease, settings, circuit)

    @property
    def token(self) -> int:
        return self.lease.token

    def check(self) -> None:
        """Raise `LeaseLost` if a renewal failed: the run must stop writing."""
        if self.lost is not None:
            raise LeaseLost(
                f"the lease on trace {self.lease.trace_id!r} was lost ({self.lost}); "
                "the run stopped and wrote nothing more"
            )

    def _start_renewal(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._renew())

    async def _renew(self) -> None:
        try:
            self.lease = await self._store.renew_lease(self.lease, self._settings.ttl_ms)
        except (RanvierError, OSError) as exc:
            self.lost = exc
            metrics.LEASES_LOST.labels(self._circuit).inc()
            log.error("lease renewal failed trace_id=%s: %s", self.lease.trace_id, exc)
            return
        self._timer = asyncio.get_running_loop().call_later(
            self._settings.renew_every_ms / 1000, self._start_renewal
        )

    async def stop(self) -> None:
        """Stop renewing (no write)."""
        self._timer.cancel()
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    def completed(self) -> None:
        """The fenced `complete` succeeded: the store released the lease in that write."""
        self.released = True

    async def release(self) -> None:
        """Stop renewing and give the lease up (best effort: it expires anyway).

        No store call when the lease was lost or a fenced `complete` already released it.
        """
        await self.stop()
        if self.lost is None and not self.released:
            try:
                await self._store.release_lease(self.lease)
            except (RanvierError, OSError) as exc:
                log.warning("lease release failed trace_id=%s: %s", self.lease.trace_id, exc)
