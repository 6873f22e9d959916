"""The CI tier: every campaign, briefly, on every store it applies to (issue 15).

Each prints its seed and counts; RANVIER_FAULTS_SEED replays one, RANVIER_FAULTS_SECONDS
sets the length of the fault phase. A failing seed's ledger, worker histories and logs
are kept (the path is in the failure message). `make soak` runs the same campaigns
for as long as asked.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from tests.faults.catalog import CATALOG, Entry

SECONDS = float(os.environ.get("RANVIER_FAULTS_SECONDS", "3"))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("entry", CATALOG, ids=[e.id for e in CATALOG])
def test_campaign_finds_no_anomaly(entry: Entry, tmp_path: Path) -> None:
    seed = int(os.environ.get("RANVIER_FAULTS_SEED", random.randrange(1 << 30)))
    verdict = entry.run(seed, SECONDS, tmp_path, 1.0)
    assert not verdict.anomalies, f"{entry.id}, seed {seed}:\n  " + "\n  ".join(
        verdict.anomalies[:40]
    )
    assert not entry.misses(verdict.counts), (
        f"{entry.id}, seed {seed} exercised too little: {entry.misses(verdict.counts)}"
    )
