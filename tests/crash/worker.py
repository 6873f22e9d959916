"""The worker that runs in a forked child process and gets SIGKILLed.

Kill points sit before, during and after each step, before and after each checkpoint
and completion, and around the compensation hook; the child kills itself with a real
SIGKILL at the point the parent drew (or a timer thread does, at a random instant).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from ranvier import (
    Axon,
    CompensationContext,
    LeaseSettings,
    Outcome,
    RunStatus,
    StepContext,
    TraceBusy,
    open_store,
)
from ranvier.runtime import compensation_key
from tests.crash import effects

LEASE = LeaseSettings(ttl_ms=400, renew_every_ms=120)
CIRCUIT = "crash-orders"


KILL_POINTS = (
    "before step",
    "during step",
    "after step",
    "before checkpoint",
    "after checkpoint",
    "before complete",
    "after complete",
    "in compensation, before its effect",
    "in compensation, after its effect",
)


class KillSwitch:
    """SIGKILLs this process at the `nth` pass of kill point `at` (noted in the ledger first)."""

    def __init__(self, at: str | None, nth: int, ledger: sqlite3.Connection) -> None:
        self.at = at
        self.nth = nth
        self.ledger = ledger

    def point(self, where: str) -> None:
        if where == self.at:
            self.nth -= 1
            if self.nth == 0:
                effects.record(self.ledger, "-", where, "kill")
                os.kill(os.getpid(), signal.SIGKILL)


class Worker:
    def __init__(self, ledger: sqlite3.Connection, kill: KillSwitch) -> None:
        self.ledger = ledger
        self.kill = kill

    def step(self, name: str) -> Any:
        async def run(value: dict[str, Any], ctx: StepContext) -> Any:
            self.kill.point("before step")
            exec_id = effects.record(self.ledger, ctx.trace_id, ctx.idempotency_key, "step")
            self.kill.point("during step")  # the effect is committed, the step not finished
            await asyncio.sleep(random.random() * 0.002)
            self.kill.point("after step")
            if name == "reserve" and value["faulty"]:
                return Outcome.fault("out_of_stock", f"exec={exec_id}")
            return {**value, "n": value["n"] + 1, "exec": exec_id}

        run.__name__ = name
        return run

    async def refund(self, context: CompensationContext) -> None:
        self.kill.point("in compensation, before its effect")  # claimed
        key = compensation_key(context.trace_id, context.circuit, context.fault_kind)
        effects.record(self.ledger, context.trace_id, key, "compensation")
        self.kill.point("in compensation, after its effect")  # not yet marked

    def axon(self) -> Axon:
        # the campaign kills the same trace many times on purpose: not a poison run
        axon = Axon(CIRCUIT, version="1", lease=LEASE, compensation=self.refund, max_attempts=1_000)
        for name in ("validate", "charge", "reserve", "confirm"):
            axon.then(self.step(name))
        return axon


class KillingStore:
    """Delegates to the real store, with kill points around checkpoints and completion."""

    def __init__(self, inner: Any, kill: KillSwitch) -> None:
        self._inner = inner
        self._kill = kill

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, envelope: Any, *, fence: int | None = None) -> None:
        self._kill.point("before checkpoint")
        await self._inner.append(envelope, fence=fence)
        self._kill.point("after checkpoint")

    async def complete(self, trace_id: str, state: Any, *, fence: int | None = None) -> None:
        self._kill.point("before complete")
        await self._inner.complete(trace_id, state, fence=fence)
        self._kill.point("after complete")


async def drive_one(worker: Worker, axon: Axon, store: Any, trace_id: str, faulty: bool) -> bool:
    """Run or resume one trace to its end; False if another worker holds it."""
    try:
        result = await axon.run(
            {"n": 0, "faulty": faulty, "exec": None}, store=store, trace_id=trace_id
        )
        while result.status is RunStatus.COMPENSATING:
            await operator_decides(worker, store, trace_id)
            result = await axon.resume(trace_id, store=store)
    except TraceBusy:
        return False
    if result.status is RunStatus.LEASE_LOST:  # stalled past the lease: another worker's turn
        return False
    if result.status is not RunStatus.COMPLETED or result.completion is None:
        raise AssertionError(f"{trace_id}: unexpected end {result}")
    effects.record(worker.ledger, trace_id, trace_id, "done")
    return True


async def operator_decides(worker: Worker, store: Any, trace_id: str) -> None:
    """An unfinished compensation: mark it if its effect happened, else let it run again."""
    key = compensation_key(trace_id, CIRCUIT, "out_of_stock")
    if effects.has(worker.ledger, key, "compensation"):
        await store.compensations.mark_compensated(key)
    else:
        await store.compensations.release(key)


async def work(
    url: str,
    options: dict[str, Any],
    ledger_path: Path,
    traces: list[tuple[str, bool]],
    kill_at: tuple[str, int] | None,
    kill_after_s: float | None,
    parallel: int,
) -> None:
    ledger = effects.connect(ledger_path)
    kill = KillSwitch(*(kill_at or (None, 0)), ledger)
    worker = Worker(ledger, kill)
    store = KillingStore(await open_store(url, ensure_schema=False, **options), kill)
    if kill_after_s is not None:
        timer = threading.Timer(kill_after_s, os.kill, (os.getpid(), signal.SIGKILL))
        timer.daemon = True
        timer.start()
    axon = worker.axon()
    pending = list(traces)
    while pending:
        batch, pending = pending[:parallel], pending[parallel:]
        finished = await asyncio.gather(*(drive_one(worker, axon, store, t, f) for t, f in batch))
        busy = [t for t, ok in zip(batch, finished, strict=True) if not ok]
        if busy:
            pending.extend(busy)
            await asyncio.sleep(0.02)  # their leases belong to a killed worker: wait them out


def child_main(*args: Any) -> None:
    """Entry point of the forked child: exit 0 when done, 3 on any error."""
    seed = args[-1]
    random.seed(seed)
    try:
        asyncio.run(work(*args[:-1]))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)
