"""Randomized SIGKILL of two or three competing `recover` workers (issue 6, item 4).

What must hold every time: no step that was checkpointed ever re-runs, no trace runs
in two processes at once, every trace completes exactly once. At least 100 kills per
durable adapter; the seed is printed (replay with RANVIER_WORKERS_SEED).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest

from tests.crash import effects
from tests.crash.targets import make_target
from tests.workers.killing import Campaign, check_one_runner_at_a_time, check_traces
from tests.workers.spawn import durable_adapters, with_store

KILLS = int(os.environ.get("RANVIER_WORKERS_KILLS", "100"))


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("adapter", durable_adapters())
def test_competing_workers_killed_at_random_never_rerun_a_checkpointed_step(
    adapter: str, tmp_path: Path
) -> None:
    seed = int(os.environ.get("RANVIER_WORKERS_SEED", random.randrange(1 << 30)))
    target = make_target(adapter, tmp_path)
    ledger = tmp_path / "effects.db"
    effects.connect(ledger).close()
    campaign = Campaign(target, ledger, seed, KILLS)
    print(f"\n{adapter}: seed={seed} workers={campaign.workers} (RANVIER_WORKERS_SEED to replay)")
    started = time.perf_counter()
    try:
        campaign.run()
        rows = check_one_runner_at_a_time(ledger, seed)
        seen = with_store(target, lambda s: check_traces(s, campaign))
    finally:
        if target.cleanup is not None:
            target.cleanup(target)
    print(
        f"{adapter}: {campaign.kills} kills over {campaign.spawned} workers, "
        f"{seen['traces']} traces, {seen['reruns']} in-flight re-runs, {rows} ledger rows, "
        f"{time.perf_counter() - started:.1f} s {campaign.timings}"
    )
    assert campaign.kills >= KILLS
    assert seen["traces"] == len(campaign.first)
    assert seen["reruns"] > 0  # kills did land inside steps
