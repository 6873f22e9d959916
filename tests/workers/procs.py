"""What the forked worker processes run: lease contention, a paused holder, `recover`.

Each entry point runs its own event loop and ends with `os._exit` (0: done, 3: error),
so a forked child never runs the parent's pytest teardown.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ranvier import Axon, LeaseSettings, RanvierError, StepContext, open_store, recover
from tests.crash import effects
from tests.crash.worker import KillingStore, KillSwitch
from tests.workers.fleet import pipeline


def child(out: Path | None, main: Callable[..., Awaitable[Any]], *args: Any) -> None:
    """Run `main(*args)` in this forked child, write its result as JSON to `out`, and
    exit without the parent's cleanup."""
    try:
        result = asyncio.run(main(*args))
        if out is not None:
            out.write_text(json.dumps(result))
    except BaseException:
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(3)
    os._exit(0)


# --- many tasks in several processes contend for one lease --------------------------


async def contend(
    url: str, options: dict[str, Any], trace_id: str, index: int, rounds: int, tasks: int,
    barrier: Any,
) -> list[tuple[int, str, int]]:  # fmt: skip
    store = await open_store(url, **options)
    wins = []
    for round_ in range(rounds):
        barrier.wait()  # everybody is ready: contend at once
        holders = [f"p{index}-t{i}" for i in range(tasks)]
        leases = await asyncio.gather(*(store.acquire_lease(trace_id, h, 60_000) for h in holders))
        won = [lease for lease in leases if lease is not None]
        wins += [(round_, lease.holder, lease.token) for lease in won]
        barrier.wait()  # everybody has tried
        for lease in won:
            assert await store.release_lease(lease)
        barrier.wait()  # the lease is free again
    await store.close()
    return wins


# --- a holder paused (SIGSTOP) past its lease ---------------------------------------

PAUSED_LEASE = LeaseSettings(ttl_ms=600, renew_every_ms=150)


class RecordingStore:
    """Delegates to the store and records each write's outcome: (method, error or "ok")."""

    WRITES = ("append", "complete", "resume", "renew_lease", "release_lease")

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.writes: list[tuple[str, str]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name not in self.WRITES:
            return attr

        async def write(*args: Any, **kwargs: Any) -> Any:
            try:
                result = await attr(*args, **kwargs)
            except RanvierError as exc:
                self.writes.append((name, type(exc).__name__))
                raise
            self.writes.append((name, "ok"))
            return result

        return write


def paused_pipeline(by: str, marker: Path | None) -> Axon:
    """a -> slow -> c; `slow` blocks the loop (no renewal) once `marker` is written."""

    def a(value: Any, ctx: StepContext) -> Any:
        return {"by": by, "n": 1}

    def slow(value: Any, ctx: StepContext) -> Any:
        if marker is not None:
            marker.write_text("in slow")
            time.sleep(0.3)  # SIGSTOPped in here
        return {"by": by, "n": 2}

    def c(value: Any, ctx: StepContext) -> Any:
        return {"by": by, "n": 3}

    return Axon("paused", version="1", lease=PAUSED_LEASE).then(a).then(slow).then(c)


async def paused_holder(
    url: str, options: dict[str, Any], trace_id: str, marker: Path
) -> dict[str, Any]:
    store = RecordingStore(await open_store(url, **options))
    axon = paused_pipeline("holder", marker)
    result = await axon.run(None, store=store, trace_id=trace_id)  # type: ignore[arg-type]
    return {"status": result.status.value, "writes": store.writes}


# --- workers calling recover ---------------------------------------------------------


async def recover_once(
    url: str, options: dict[str, Any], ledger: Path, barrier: Any
) -> dict[str, Any]:
    store = await open_store(url, **options)
    conn = effects.connect(ledger)

    def effect(ctx: StepContext, value: Any) -> None:
        effects.record(conn, ctx.trace_id, ctx.idempotency_key, "step")

    barrier.wait()  # all four call recover at once
    report = await recover(store, [pipeline(effect, delay_s=0.005)], concurrency=4, batch_size=25)
    await store.close()
    return {"resumed": report.ids("resumed"), "summary": str(report)}


KILL_POINTS = (
    "before step", "during step", "after step", "before checkpoint", "after checkpoint",
    "before complete", "after complete",
)  # fmt: skip
"""Where a worker may kill itself (`tests.crash.worker.KillSwitch` notes it first)."""


def record_kill(ledger: Path, pid: int) -> None:
    conn = effects.connect(ledger)
    try:
        conn.execute("INSERT INTO effects (trace, key, kind, pid) VALUES ('*', 'kill', 'kill', ?)",
                     (pid,))  # fmt: skip
    finally:
        conn.close()


KILL_LEASE = LeaseSettings(ttl_ms=1_000, renew_every_ms=200)


async def watch_worker(
    url: str, options: dict[str, Any], ledger: Path, kill_at: str | None, nth: int, seed: int
) -> None:
    """`recover --watch` until killed; steps record start and end, kill points around."""
    rng = random.Random(seed)
    conn = effects.connect(ledger)
    kill = KillSwitch(kill_at, nth, conn)
    store = KillingStore(await open_store(url, **options), kill)
    # the campaign kills the same trace many times on purpose: not a poison run
    axon = Axon("fleet", version="1", lease=KILL_LEASE, max_attempts=1_000)
    for name in ("s0", "s1", "s2", "s3", "s4"):
        axon.then(_killable_step(conn, kill, rng), name)
    await recover(store, [axon], watch=True, poll_interval=0.05, concurrency=4)  # type: ignore[arg-type]


def _killable_step(conn: Any, kill: KillSwitch, rng: random.Random) -> Any:
    async def step(value: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
        kill.point("before step")
        exec_id = effects.record(conn, ctx.trace_id, ctx.idempotency_key, "step")
        kill.point("during step")
        await asyncio.sleep(rng.random() * 0.08)
        effects.record(conn, ctx.trace_id, f"{ctx.idempotency_key}#{exec_id}", "step-end")
        kill.point("after step")
        return {"n": value["n"] + 1, "exec": exec_id}

    return step
