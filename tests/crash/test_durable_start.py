"""Runs killed at any instant after `run()` was called, finished by `ranvier recover` in
another process with their input (issue 12, item 1), on every durable store.

Each forked child runs two traces and is SIGKILLed at one of the kill points of the
start window (the lease and trace just stored, in step 0 before or after its effect,
around checkpoint 0) or by a timer at a random instant. Then one `ranvier recover`
process finishes them. What must hold: a trace that is not stored ran no step; every
stored trace completes, and each run of its first step saw the input it was started
with.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from ranvier import CompletionState, open_store
from tests.crash.apps import Ledger, starts
from tests.crash.targets import ADAPTERS, Target, make_target

CHILDREN = int(os.environ.get("RANVIER_START_CHILDREN", "60"))
ROOT = Path(__file__).resolve().parents[2]
POINTS = (
    "after acquire",
    "before step effect",
    "after step effect",
    "before checkpoint",
    "after checkpoint",
    "timer",
)


class KillingLedger(Ledger):
    """The ledger of a child that dies at the first pass of `point` in step `first`."""

    def __init__(self, path: Path, point: str) -> None:
        super().__init__(path)
        self.point = point

    def record(self, **fields: Any) -> None:
        if fields.get("node") == "first":
            _maybe_kill(self.point, "before step effect")
            super().record(**fields)
            _maybe_kill(self.point, "after step effect")
        else:
            super().record(**fields)


class KillingStore:
    def __init__(self, inner: Any, point: str) -> None:
        self._inner, self._point = inner, point

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def acquire_lease(self, *args: Any, **kwargs: Any) -> Any:
        lease = await self._inner.acquire_lease(*args, **kwargs)
        _maybe_kill(self._point, "after acquire")
        return lease

    async def append(self, envelope: Any, *, fence: int | None = None) -> None:
        if envelope.step == 0:
            _maybe_kill(self._point, "before checkpoint")
        await self._inner.append(envelope, fence=fence)
        if envelope.step == 0:
            _maybe_kill(self._point, "after checkpoint")


def _maybe_kill(point: str, here: str) -> None:
    if point == here:
        os.kill(os.getpid(), signal.SIGKILL)


async def _child(target: Target, ledger: Path, point: str, delay: float, ids: list[str]) -> None:
    inner = await open_store(target.url, ensure_schema=False, **target.options)
    store = KillingStore(inner, point)
    if point == "timer":
        threading.Timer(delay, os.kill, (os.getpid(), signal.SIGKILL)).start()
    resources = {"ledger": KillingLedger(ledger, point)}
    await asyncio.gather(
        *(starts.run({"order": t}, store=store, trace_id=t, resources=resources) for t in ids)
    )
    await inner.close()


def child_main(target: Target, ledger: Path, point: str, delay: float, ids: list[str]) -> None:
    try:
        asyncio.run(_child(target, ledger, point, delay, ids))
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def _recover(target: Target, ledger: Path) -> tuple[int, dict[str, Any], int]:
    env = {
        **os.environ,
        "RANVIER_TEST_LEDGER": str(ledger),
        "RANVIER_STORE_URL": target.url,
        "RANVIER_STORE_OPTIONS": " ".join(f"{k}={v}" for k, v in target.options.items()),
        "RANVIER_NO_PROGRESS": "1",
    }
    command = [sys.executable, "-m", "ranvier", "recover", "--app", "tests.crash.apps:app"]
    proc = subprocess.Popen(
        [*command, "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    return proc.returncode, orjson.loads(out), proc.pid


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_runs_killed_in_the_start_window_are_finished_by_recover_with_their_input(
    adapter: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RANVIER_CRASH_SEED", random.randrange(1 << 30)))
    print(f"seed {seed}")
    rng = random.Random(seed)
    target = make_target(adapter, tmp_path)
    ledger = tmp_path / "ledger.jsonl"
    context = multiprocessing.get_context("fork")
    ids: list[str] = []
    kills: Counter[str] = Counter()
    planned = Counter(POINTS[n % len(POINTS)] for n in range(CHILDREN))
    try:
        for n in range(CHILDREN):
            point = POINTS[n % len(POINTS)]
            batch = [f"start-{n}-{i}" for i in range(2)]
            ids += batch
            args = (target, ledger, point, rng.uniform(0.0, 0.03), batch)
            child = context.Process(target=child_main, args=args)
            child.start()
            child.join(60)
            assert child.exitcode in (0, -signal.SIGKILL), f"child failed (seed {seed})"
            if child.exitcode == -signal.SIGKILL:
                kills[point] += 1
        time.sleep(starts.lease.ttl_ms / 1000 + 0.1)  # the killed children's leases expire
        _, report, recover_pid = _recover(target, ledger)
        stored = asyncio.run(_load_all(target, ids))
    finally:
        if target.cleanup is not None:
            target.cleanup(target)
    print(f"kills by point {dict(kills)}; recover {report['resumed']} resumed")
    for point in POINTS[:-1]:  # the timer may fire after a child finished
        assert kills[point] == planned[point], f"kills {kills} (seed {seed})"
    lines = Ledger(ledger).lines()
    by_recover = set()
    for tid in ids:
        steps = [x for x in lines if x.get("trace") == tid and x["kind"] == "step"]
        trace = stored[tid]
        if trace is None:  # killed before its start was stored: nothing may have run
            assert steps == [], f"{tid} ran a step but was never stored (seed {seed})"
            continue
        assert trace.completion is CompletionState.SUCCESS, f"{tid}: {trace} (seed {seed})"
        assert trace.input == {"order": tid}
        assert trace.events[0].payload == {"input": {"order": tid}, "n": 1}
        firsts = [x for x in steps if x["node"] == "first"]
        assert firsts and all(x["input"] == {"order": tid} for x in firsts)
        if any(x["pid"] == recover_pid for x in firsts):
            by_recover.add(tid)
    # the window this is about: traces whose first step had no checkpoint at the kill
    assert len(by_recover) >= kills["after acquire"], f"{by_recover} (seed {seed})"
    assert report["failed"] == 0 and report["poisoned"] == 0


async def _load_all(target: Target, ids: list[str]) -> dict[str, Any]:
    store = await open_store(target.url, ensure_schema=False, **target.options)
    try:
        return {tid: await store.load(tid) for tid in ids}
    finally:
        await store.close()
