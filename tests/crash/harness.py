"""The SIGKILL campaign: fork workers, kill them at random points, resume, then verify.

Workers are forked from the (synchronous) test process: no new interpreter per kill.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import random
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranvier import CompletionState, OutcomeKind
from ranvier.runtime import compensation_key
from tests.crash import effects
from tests.crash.targets import Target
from tests.crash.worker import CIRCUIT, KILL_POINTS, child_main

RARE_POINTS = {"before complete", "after complete"}
"""Passed once per trace (the compensation points once per faulty trace): killed at
their first or second pass; the others at one of their first six."""


@dataclass
class Campaign:
    target: Target
    ledger: Path
    seed: int
    kills_wanted: int = 200
    parallel: int = 3
    traces: list[tuple[str, bool]] = field(default_factory=list)
    killed_pids: set[int] = field(default_factory=set)
    kills: int = 0
    children: int = 0

    def add_traces(self, n: int) -> None:
        start = len(self.traces)
        self.traces += [(f"crash-{start + i}", (start + i) % 3 == 2) for i in range(n)]

    def run(self) -> None:
        rng = random.Random(self.seed)
        context = multiprocessing.get_context("fork")
        self.add_traces(30)
        while True:
            done = effects.done_traces(self.ledger)
            pending = [t for t in self.traces if t[0] not in done]
            if self.kills < self.kills_wanted and len(pending) < 24:
                self.add_traces(12)  # plenty of free traces: a killed one's lease blocks it
                continue
            if not pending:
                return
            rng.shuffle(pending)
            self._one_child(context, pending, rng)

    def _kill_point(self, rng: random.Random) -> tuple[str, int]:
        where = KILL_POINTS[self.children % len(KILL_POINTS)]  # each kind in turn
        rare = where in RARE_POINTS or where.startswith("in compensation")
        return where, rng.randint(1, 2 if rare else 6)

    def _one_child(self, context: Any, pending: list[tuple[str, bool]], rng: random.Random) -> None:
        killing = self.kills < self.kills_wanted
        kill_at = self._kill_point(rng) if killing and rng.random() < 0.7 else None
        kill_after = rng.uniform(0.0, 0.05) if killing and kill_at is None else None
        args = (
            self.target.url,
            self.target.options,
            self.ledger,
            pending,
            kill_at,
            kill_after,
            self.parallel,
            rng.randrange(1 << 30),
        )
        child = context.Process(target=child_main, args=args)
        child.start()
        child.join(timeout=60)
        self.children += 1
        if child.exitcode == -signal.SIGKILL:
            self.kills += 1
            self.killed_pids.add(child.pid)
            return
        if child.exitcode != 0:
            child.kill()
            raise AssertionError(
                f"worker pid {child.pid} failed (exit {child.exitcode}), seed {self.seed}"
            )


async def verify(campaign: Campaign) -> Counter[str]:
    """Check every promise of the runtime over every trace; returns what was seen."""
    steps = effects.executions(campaign.ledger, "step")
    compensations = effects.executions(campaign.ledger, "compensation")
    seen: Counter[str] = Counter()
    for where, hits in effects.executions(campaign.ledger, "kill").items():
        seen[f"killed {where}"] = len(hits)
    store = await campaign.target.open()
    try:
        for trace_id, faulty in campaign.traces:
            await _verify_trace(store, trace_id, faulty, steps, compensations, campaign, seen)
    finally:
        await store.close()
    return seen


async def _verify_trace(
    store: Any,
    trace_id: str,
    faulty: bool,
    steps: dict[str, list[effects.Execution]],
    compensations: dict[str, list[effects.Execution]],
    campaign: Campaign,
    seen: Counter[str],
) -> None:
    trace = await store.load(trace_id)
    assert trace is not None, trace_id
    expected = CompletionState.COMPENSATED if faulty else CompletionState.SUCCESS
    assert trace.completion is expected, f"{trace_id} completed as {trace.completion}"
    assert trace.superseded_events == (), f"{trace_id}: a stored checkpoint was rewritten"
    assert await store.get_lease(trace_id) is None, f"{trace_id}: lease left held"
    stored_keys = set()
    for event in trace.events:
        if event.outcome_kind is OutcomeKind.COMPENSATED:
            continue
        key = f"{trace_id}:{event.step}"
        stored_keys.add(key)
        runs = steps[key]
        stored_exec = _exec_of(event.payload)
        # a step whose checkpoint was stored never re-runs: the stored run is the last
        assert runs[-1].id == stored_exec, f"{key} ran again after its checkpoint was stored"
        # earlier runs were the step in flight at a kill, re-run with the same key
        assert all(r.pid in campaign.killed_pids for r in runs[:-1]), f"{key}: re-run without kill"
        assert len({r.pid for r in runs}) == len(runs), f"{key} ran twice in one process"
        seen["reruns"] += len(runs) - 1
    executed = {k for k in steps if k.startswith(f"{trace_id}:")}
    assert executed == stored_keys, f"{trace_id}: steps ran but never checkpointed"
    key = compensation_key(trace_id, CIRCUIT, "out_of_stock")
    assert len(compensations.get(key, [])) == (1 if faulty else 0), f"{key} ran twice"
    seen["traces"] += 1


def _exec_of(payload: Any) -> int:
    if "exec" in payload:
        return int(payload["exec"])
    return int(str(payload["message"]).removeprefix("exec="))


def run_and_verify(
    target: Target, tmp_path: Path, seed: int, kills: int
) -> tuple[Campaign, Counter[str]]:
    print(f"crash campaign on {target.name}: seed={seed} (RANVIER_CRASH_SEED={seed} to replay)")
    campaign = Campaign(target, tmp_path / "effects.db", seed, kills_wanted=kills)
    effects.connect(campaign.ledger).close()
    started = time.perf_counter()
    campaign.run()
    seen = asyncio.run(verify(campaign))
    print(
        f"{target.name}: {campaign.kills} kills over {campaign.children} workers, "
        f"{seen['traces']} traces, {seen['reruns']} in-flight re-runs, "
        f"{time.perf_counter() - started:.1f} s"
    )
    print(
        "  kills by point: "
        + ", ".join(f"{k[7:]}: {v}" for k, v in seen.items() if k.startswith("killed "))
    )
    return campaign, seen
