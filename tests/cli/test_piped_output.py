"""Output piped into another program keeps whole values (issue 14, item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ranvier import PersistenceEnvelope
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Cli, Target


def test_a_piped_table_is_not_cut_at_80_columns(cli: Cli, target: Target) -> None:
    long_id = "an-interrupted-trace-with-a-rather-long-identifier-" + "x" * 40

    async def work(store: PersistenceStore) -> None:
        await store.append(
            PersistenceEnvelope(
                trace_id=long_id, circuit="a-long-circuit-name-for-the-table", step=0,
                schematic_version="1.0", node_id="validate", payload={},
            )
        )  # fmt: skip

    target.with_store(work)
    env = {**os.environ, **target.env, "COLUMNS": "80"}
    done = subprocess.run(
        [sys.executable, "-m", "ranvier", "traces", "list"],
        cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if long_id in x)
    assert "interrupted" in line and "a-long-circuit-name-for-the-table" in line
    assert "…" not in done.stdout
