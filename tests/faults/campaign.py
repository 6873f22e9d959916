"""A campaign: worker processes run the workload while an injector breaks things.

The campaign process is synchronous (it forks the workers): it ticks the injector,
replaces workers that died, resumes paused ones when their pause is over; then it
heals everything, stops the workers (SIGTERM: they finish their runs), drains what is
left with `recover` and runs the checker. A failing seed's run directory (ledger,
histories, worker logs) is copied to RANVIER_FAULTS_KEEP (default /tmp/ranvier-faults).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.crash import effects
from tests.crash.targets import Target
from tests.faults import workload
from tests.faults.checker import Verdict, check
from tests.faults.drain import drain
from tests.faults.history import History, history_dir
from tests.faults.worker import WorkerSpec, spawn
from tests.workers.spawn import with_store

TICK_S = 0.02
KEEP = Path(os.environ.get("RANVIER_FAULTS_KEEP", "/tmp/ranvier-faults"))


class Injector:
    """Breaks things during a campaign; the default breaks nothing."""

    def setup(self, campaign: Campaign) -> None:
        return None

    def url_for(self, campaign: Campaign, slot: int) -> str:
        return campaign.target.url

    def tick(self, campaign: Campaign) -> None:
        return None

    def heal(self, campaign: Campaign) -> None:
        return None

    def teardown(self, campaign: Campaign) -> None:
        return None


@dataclass
class Campaign:
    name: str
    target: Target
    injector: Injector
    seed: int
    seconds: float
    run_dir: Path
    workers: int = 0
    """Worker processes at once (0: two or three, drawn from the seed)."""
    skews_ms: tuple[int, ...] = (0,)
    """The clock skew of each new worker, in turn."""
    pad: int = 0
    step_pause_s: float = 0.004
    rng: random.Random = field(init=False)
    circuit: str = field(init=False)
    live: dict[int, Any] = field(default_factory=dict)
    """slot -> worker process."""
    killed: set[int] = field(default_factory=set)
    paused: dict[int, float] = field(default_factory=dict)
    """pid -> when to SIGCONT it."""
    tally: Counter[str] = field(default_factory=Counter)
    anomalies: list[str] = field(default_factory=list)
    history: History = field(init=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.workers = self.workers or self.rng.choice((2, 3))
        self.circuit = f"faults-{self.name}-{self.seed}"

    # --- the run -------------------------------------------------------------------

    def run(self) -> Verdict:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.history = History(history_dir(self.run_dir) / "campaign.jsonl", "campaign")
        with_store(self.target, lambda store: asyncio.sleep(0))  # the schema; loud if down
        effects.connect(workload.ledger_path(self.run_dir)).close()
        self.injector.setup(self)
        try:
            self._fault_phase()
            self.injector.heal(self)
            self._stop_workers()
            drained = with_store(self.target, lambda s: drain(s, self.circuit, self.run_dir))
            verdict = with_store(
                self.target, lambda s: check(s, self.circuit, self.run_dir, self.killed)
            )
        finally:
            self._kill_all()
            self.injector.teardown(self)
            self.history.close()
        verdict.counts.update(drained)
        verdict.counts.update(self.tally)
        verdict.anomalies[:0] = self.anomalies
        if verdict.anomalies:
            verdict.anomalies.append(f"(ledger, histories and logs kept in {self._keep(verdict)})")
        return verdict

    def _keep(self, verdict: Verdict) -> Path:
        kept = KEEP / f"{self.name}-{self.target.name}-{self.seed}"
        shutil.rmtree(kept, ignore_errors=True)
        shutil.copytree(self.run_dir, kept)
        (kept / "anomalies.txt").write_text("\n".join(verdict.anomalies) + "\n")
        if self.target.url.startswith("sqlite:///"):  # the store itself, WAL included
            for path in Path(self.target.url.removeprefix("sqlite:///")).parent.glob("*.db*"):
                shutil.copy(path, kept / path.name)
        return kept

    def _fault_phase(self) -> None:
        for slot in range(self.workers):
            self.spawn(slot)
        deadline = time.monotonic() + self.seconds
        while time.monotonic() < deadline:
            self.injector.tick(self)
            self._reap()
            self._wake()
            time.sleep(TICK_S)

    # --- workers -------------------------------------------------------------------

    def spawn(self, slot: int) -> None:
        n = self.tally["workers"]
        count = int(self.seconds / 0.03) + 10
        starts = tuple((f"{self.circuit}-{n}-{i}", self.rng.random() < 0.25) for i in range(count))
        spec = WorkerSpec(
            name=f"w{n}",
            url=self.injector.url_for(self, slot),
            options=self.target.options,
            circuit=self.circuit,
            run_dir=self.run_dir,
            starts=starts,
            seed=self.rng.randrange(1 << 30),
            skew_ms=self.skews_ms[n % len(self.skews_ms)],
            pad=self.pad,
            step_pause_s=self.step_pause_s,
        )
        self.live[slot] = spawn(spec)
        self.tally["workers"] += 1
        self.history.record("spawn", slot=slot, child=self.live[slot].pid, skew_ms=spec.skew_ms)

    def kill(self, slot: int) -> None:
        """SIGKILL the worker in `slot` and start another in its place."""
        process = self.live[slot]
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
        process.join()
        self.paused.pop(process.pid, None)
        if process.exitcode == -signal.SIGKILL:
            self.killed.add(process.pid)
            self.tally["kills"] += 1
            self.history.record("kill", slot=slot, child=process.pid)
        else:
            self._died(slot, process)
        self.spawn(slot)

    def pause(self, slot: int, seconds: float) -> None:
        """SIGSTOP the worker in `slot` for `seconds` (then SIGCONT)."""
        process = self.live[slot]
        if process.pid in self.paused or process.exitcode is not None:
            return
        os.kill(process.pid, signal.SIGSTOP)
        self.paused[process.pid] = time.monotonic() + seconds
        self.tally["pauses"] += 1
        self.history.record("pause", slot=slot, child=process.pid, seconds=seconds)

    def _wake(self) -> None:
        now = time.monotonic()
        for pid, until in list(self.paused.items()):
            if now >= until:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
                del self.paused[pid]
                self.history.record("continue", child=pid)

    def _reap(self) -> None:
        for slot, process in list(self.live.items()):
            if process.exitcode is not None:
                self._died(slot, process)
                self.spawn(slot)

    def _died(self, slot: int, process: Any) -> None:
        self.anomalies.append(
            f"worker {process.name} (pid {process.pid}) exited {process.exitcode} on its own "
            f"(its traceback is in the test output); seed {self.seed}"
        )

    def _stop_workers(self) -> None:
        for pid in list(self.paused):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.paused.clear()
        for process in self.live.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        for process in self.live.values():
            process.join(30)
            if process.exitcode is None:
                self.anomalies.append(f"worker {process.name} did not stop within 30 s")
            elif process.exitcode != 0:
                self._died(-1, process)
        self._kill_all()

    def _kill_all(self) -> None:
        for process in self.live.values():
            if process.exitcode is None:
                process.kill()
                process.join()
                self.killed.add(process.pid)
        self.live.clear()


def summary(campaign: Campaign, verdict: Verdict, seconds: float) -> str:
    counts = dict(sorted(verdict.counts.items()))
    return (
        f"{campaign.name} on {campaign.target.name}: seed={campaign.seed} "
        f"(RANVIER_FAULTS_SEED={campaign.seed} replays it), {campaign.workers} workers, "
        f"{seconds:.1f} s, {len(verdict.anomalies)} anomalies\n  {counts}"
    )
