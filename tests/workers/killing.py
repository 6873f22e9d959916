"""Competing `recover --watch` workers SIGKILLed at random, then every promise checked.

Two or three workers run at once. The parent kills a random one at random moments and
workers kill themselves at random kill points (inside steps, around checkpoints and
completions, from `tests.crash.worker`); each is replaced at once. Every step records
its start and end in the ledger and every death is recorded there too, so the ledger's
order shows which process ran which trace when.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sqlite3
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranvier import CompletionState, TraceStatus
from ranvier.stores.base import PersistenceStore
from tests.crash import effects
from tests.crash.targets import Target
from tests.workers import procs
from tests.workers.fleet import new_ids, seed
from tests.workers.spawn import start, with_store

SELF_KILL_PASSES = 20
"""A self-killing worker dies at pass 1..this of its kill point (a trace passes 1-4)."""


@dataclass
class Campaign:
    target: Target
    ledger: Path
    seed: int
    kills_wanted: int
    rng: random.Random = field(init=False)
    workers: int = field(init=False)
    first: dict[str, int] = field(default_factory=dict)
    live: dict[int, Any] = field(default_factory=dict)
    killed: set[int] = field(default_factory=set)
    kills: int = 0
    spawned: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.workers = self.rng.choice((2, 3))

    def run(self) -> None:
        self.add_traces(150)
        try:
            started = time.perf_counter()
            while self.kills < self.kills_wanted:
                self._timed("replace", lambda: self.replace_dead(killing=True))
                time.sleep(self.rng.uniform(0.03, 0.2))
                self._timed("kill", self.kill_one)
                self._timed("top_up", self.top_up)
            self.timings["killing"] = time.perf_counter() - started
            self.drain()
            self.timings["draining"] = time.perf_counter() - started - self.timings["killing"]
        finally:
            for pid, process in self.live.items():
                os.kill(pid, signal.SIGKILL)
                process.join()

    def _timed(self, name: str, call: Any) -> None:
        started = time.perf_counter()
        call()
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started

    def add_traces(self, n: int) -> None:
        ids = new_ids(n, "kill")
        rng = random.Random(self.rng.random())
        self.first.update(with_store(self.target, lambda s: seed(s, ids, rng)))

    def spawn(self, killing: bool) -> None:
        self_kill = killing and self.rng.random() < 0.5
        kill_at = self.rng.choice(procs.KILL_POINTS) if self_kill else None
        nth = self.rng.randint(1, SELF_KILL_PASSES)
        t = self.target
        process = start(None, procs.watch_worker, t.url, t.options, self.ledger, kill_at, nth,
                        self.rng.randrange(1 << 30))  # fmt: skip
        self.live[process.pid] = process
        self.spawned += 1

    def replace_dead(self, *, killing: bool) -> None:
        for pid, process in list(self.live.items()):
            if process.exitcode is None:
                continue
            del self.live[pid]
            if process.exitcode != -signal.SIGKILL:
                raise AssertionError(f"worker {pid} exited {process.exitcode}; seed {self.seed}")
            self.kills += 1  # killed itself at a kill point (its death is in the ledger)
            self.killed.add(pid)
        while len(self.live) < self.workers:
            self.spawn(killing)

    def kill_one(self) -> None:
        pid = self.rng.choice(sorted(self.live))
        process = self.live.pop(pid)
        if process.exitcode is None:  # else it killed itself (and was reaped) just now
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            process.join()
            procs.record_kill(self.ledger, pid)  # it is dead: nothing it does comes after
        if process.exitcode != -signal.SIGKILL:
            raise AssertionError(f"worker {pid} exited {process.exitcode}; seed {self.seed}")
        self.kills += 1
        self.killed.add(pid)

    def top_up(self) -> None:
        """Keep work for the killers: add traces when most have reached their last step."""
        conn = effects.connect(self.ledger)
        try:
            row = conn.execute("SELECT COUNT(DISTINCT trace) FROM effects WHERE key LIKE '%:4'")
            nearly_done = int(row.fetchone()[0])
        finally:
            conn.close()
        if len(self.first) - nearly_done < 40:
            self.add_traces(100)

    def drain(self) -> None:
        """No more killing: let the workers finish every trace."""
        deadline = time.monotonic() + 60
        while with_store(self.target, _open_traces):
            assert time.monotonic() < deadline, f"traces left unfinished; seed {self.seed}"
            self.replace_dead(killing=False)
            time.sleep(0.2)


async def _open_traces(store: PersistenceStore) -> int:
    open_ = 0
    for status in (TraceStatus.INTERRUPTED, TraceStatus.RUNNING):
        open_ += len((await store.list_traces(status=status, limit=10)).items)
    return open_


def check_one_runner_at_a_time(ledger: Path, seed: int) -> int:
    """Walk the ledger in order: no step of a trace starts while another process runs it."""
    running: dict[str, dict[int, int]] = defaultdict(dict)  # trace -> exec id -> pid
    by_pid: dict[int, set[tuple[str, int]]] = defaultdict(set)
    conn = sqlite3.connect(ledger)
    try:
        rows = conn.execute("SELECT id, trace, key, kind, pid FROM effects ORDER BY id").fetchall()
    finally:
        conn.close()
    for row_id, trace, key, kind, pid in rows:
        if kind == "kill":
            for t, exec_id in by_pid.pop(pid, set()):
                running[t].pop(exec_id, None)
        elif kind == "step":
            others = {p for p in running[trace].values() if p != pid}
            assert not others, f"{key} started in {pid} while {others} ran it; seed {seed}"
            running[trace][row_id] = pid
            by_pid[pid].add((trace, row_id))
        elif kind == "step-end":
            exec_id = int(key.rsplit("#", 1)[1])
            running[trace].pop(exec_id)
            by_pid[pid].discard((trace, exec_id))
    return len(rows)


def _runs(steps: dict[str, list[effects.Execution]], trace_id: str) -> dict[str, Any]:
    return {k: v for k, v in steps.items() if k.startswith(f"{trace_id}:")}


async def check_traces(store: PersistenceStore, campaign: Campaign) -> Counter[str]:
    """Each trace completed once; no checkpointed step re-ran; re-runs only after a kill."""
    steps = effects.executions(campaign.ledger, "step")
    seen: Counter[str] = Counter()
    for trace_id, first in campaign.first.items():
        trace = await store.load(trace_id)
        assert trace is not None, trace_id
        assert trace.completion is CompletionState.SUCCESS, (trace_id, trace.events[-1])
        assert [e.payload["n"] for e in trace.events] == [1, 2, 3, 4, 5], trace_id
        assert trace.superseded_events == (), (
            f"{trace_id}: a stored checkpoint was rewritten: first={first} "
            f"superseded={[(e.step, e.payload) for e in trace.superseded_events]} "
            f"live={[(e.step, e.payload) for e in trace.events]} runs={_runs(steps, trace_id)}"
        )
        assert await store.get_lease(trace_id) is None, f"{trace_id}: lease left held"
        for event in trace.events:
            key, runs = f"{trace_id}:{event.step}", steps.get(f"{trace_id}:{event.step}", [])
            if event.step < first:
                assert runs == [], f"{key} was checkpointed before recovery, yet ran"
                continue
            assert runs[-1].id == event.payload["exec"], f"{key} ran after its checkpoint"
            assert {r.pid for r in runs[:-1]} <= campaign.killed, f"{key} re-ran, no kill"
            seen["reruns"] += len(runs) - 1
        seen["traces"] += 1
    return seen
