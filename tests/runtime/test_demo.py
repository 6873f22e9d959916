"""The main job: `python -m ranvier.cli.demo` crashes, resumes and compensates (item 8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(120)
def test_the_demo_shows_crash_resume_and_compensation(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ranvier.cli.demo"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        env={**os.environ, "COLUMNS": "120"},
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "killed with exit code -9" in out  # a real SIGKILL of the worker process
    assert "last checkpoint is step 1 (charge)" in out
    assert "resumed: 2 step(s) run, completion success" in out
    assert out.count("charged 60") == 1  # the checkpointed charge did not run again
    assert out.count("attempt key order-A-1001:2") == 2  # reserve re-ran, same key
    assert out.count("[compensation] refund of trace order-B-2002") == 1
    assert "completion compensated" in out
    assert "trace order-A-1001: success" in out
    assert "trace order-B-2002: compensated" in out
    assert (tmp_path / "ranvier-demo.db").exists()
