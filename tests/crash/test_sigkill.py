"""Randomized SIGKILL of workers at any point, resumed in other processes (issue 5, item 7).

What must hold every time: each trace completes exactly once with the right state;
a step whose checkpoint was stored never re-runs; the step in flight at a kill re-runs
with the same idempotency key; compensation runs at most once (exactly once here).
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.crash.harness import run_and_verify
from tests.crash.targets import ADAPTERS, make_target
from tests.crash.worker import KILL_POINTS

KILLS = int(os.environ.get("RANVIER_CRASH_KILLS", "200"))


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_sigkilled_workers_resume_every_trace_exactly_once(adapter: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("RANVIER_CRASH_SEED", random.randrange(1 << 30)))
    target = make_target(adapter, tmp_path)
    try:
        campaign, seen = run_and_verify(target, tmp_path, seed, KILLS)
    finally:
        if target.cleanup is not None:
            target.cleanup(target)
    assert campaign.kills >= KILLS
    assert seen["traces"] == len(campaign.traces)
    assert seen["reruns"] > 0  # the kills did hit steps in flight
    missed = [where for where in KILL_POINTS if not seen[f"killed {where}"]]
    assert not missed, f"no kill at {missed} (seed {campaign.seed})"
