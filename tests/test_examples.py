"""The examples run as a new user runs them: a fresh working directory, a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k != "RANVIER_STORE_URL"}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_store_quickstart_checkpoints_reopens_resumes_and_completes(tmp_path: Path) -> None:
    out = run_example("store_quickstart.py", tmp_path).splitlines()
    assert out[:3] == [
        "step 0 validate: {'done': 'validate', 'order': 'abc'}",
        "step 1 charge: {'done': 'charge', 'order': 'abc'}",
        "step 2 reserve: {'done': 'reserve', 'order': 'abc'}",
    ]
    assert out[3].startswith("resume order-") and out[3].endswith(" at step 3")
    assert out[4:] == ["completed: success"]
    assert (tmp_path / "ranvier.db").exists()


def test_store_quickstart_runs_again_on_the_same_file(tmp_path: Path) -> None:
    run_example("store_quickstart.py", tmp_path)
    assert run_example("store_quickstart.py", tmp_path).endswith("completed: success\n")


def test_order_pipeline_runs_compensates_and_does_not_rerun(tmp_path: Path) -> None:
    out = run_example("order_pipeline.py", tmp_path).splitlines()
    assert out[0].startswith("success {'qty': 2, 'payment_key': '") and out[0].endswith(":1'}")
    assert out[1].startswith("refund ") and out[1].endswith(" after invalid")
    assert out[2:] == ["compensated invalid", "success 0 True"]
