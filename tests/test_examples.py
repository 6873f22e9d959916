"""The examples run as a new user runs them: a fresh working directory, a subprocess."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from ranvier import TraceStart, open_store

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
    assert out[0].startswith("success {'qty': 2, 'address': 'x', 'payment': 'payment-")
    assert out[0].endswith(":1', 'shipped': True}")
    assert out[1].startswith("refund ")
    assert out[2:] == ["compensated no_address", "0 True"]


def test_the_readme_pipeline_is_the_example_file() -> None:
    readme = (EXAMPLES.parent / "README.md").read_text()
    example = (EXAMPLES / "order_pipeline.py").read_text()
    code = example[example.index("import asyncio") :]
    assert f"```python\n{code}```" in readme


def test_the_example_is_an_app_that_another_process_recovers_with(tmp_path: Path) -> None:
    shutil.copy(EXAMPLES / "order_pipeline.py", tmp_path)
    start = TraceStart(circuit="orders", schematic_version="1", input={"qty": 1})

    async def killed_before_its_first_step() -> None:
        async with await open_store(f"sqlite:///{tmp_path}/orders.db") as store:
            lease = await store.acquire_lease("order-killed", "dead-worker", 60_000, start=start)
            assert lease is not None
            await store.release_lease(lease)

    asyncio.run(killed_before_its_first_step())
    env = {k: v for k, v in os.environ.items() if k != "RANVIER_STORE_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "ranvier", "recover", "--app", "order_pipeline:app",
         "--store", "sqlite:///orders.db", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "refund order-killed"  # the pipeline's hook, with the app's resources
    report = json.loads(lines[-1])
    assert (report["resumed"], report["failed"], report["exit_code"]) == (1, 0, 0)
