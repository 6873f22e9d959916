"""Recovery in another process with `--app`: the pipeline's hook and the worker's
resources (a saga compensates exactly once there) and poison runs (issue 12)."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

import orjson
import pytest

from ranvier import CompletionState, PersistedTrace, open_store
from tests.crash.apps import LEASE, Ledger, app, poison, saga
from tests.crash.targets import ADAPTERS, Target, make_target

ROOT = Path(__file__).resolve().parents[2]
EXPIRY = LEASE.ttl_ms / 1000 + 0.15


def cli(target: Target, ledger: Path, *args: str) -> subprocess.Popen[bytes]:
    """`python -m ranvier ARGS` in another process, on the target, in the project root."""
    env = {
        **os.environ,
        "RANVIER_TEST_LEDGER": str(ledger),
        "RANVIER_STORE_URL": target.url,
        "RANVIER_STORE_OPTIONS": " ".join(f"{k}={v}" for k, v in target.options.items()),
        "RANVIER_NO_PROGRESS": "1",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ranvier", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[bytes]) -> tuple[int, Any, str]:
    out, err = proc.communicate(timeout=60)
    text = out.decode().strip()
    data = orjson.loads(text.splitlines()[-1]) if text.startswith("{") else text
    return proc.returncode, data, err.decode()


RECOVER = ("recover", "--app", "tests.crash.apps:app", "--json")


async def _start_and_die(target: Target, which: str, trace_id: str, kill_after: int) -> None:
    store: Any = await open_store(target.url, ensure_schema=False, **target.options)
    if kill_after >= 0:
        store = _KillAfter(store, kill_after)
    axon = saga if which == "saga" else poison
    async with app.open_resources() as resources:
        await axon.run({"order": trace_id}, store=store, trace_id=trace_id, resources=resources)


class _KillAfter:
    """SIGKILLs the process right after checkpoint `step` is stored."""

    def __init__(self, inner: Any, step: int) -> None:
        self._inner, self._step = inner, step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def append(self, envelope: Any, *, fence: int | None = None) -> None:
        await self._inner.append(envelope, fence=fence)
        if envelope.step == self._step:
            os.kill(os.getpid(), signal.SIGKILL)


def _child(target: Target, ledger: Path, which: str, trace_id: str, kill_after: int) -> None:
    os.environ["RANVIER_TEST_LEDGER"] = str(ledger)
    try:
        asyncio.run(_start_and_die(target, which, trace_id, kill_after))
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def run_child_until_killed(target: Target, ledger: Path, which: str, tid: str, after: int) -> None:
    child = multiprocessing.get_context("fork").Process(
        target=_child, args=(target, ledger, which, tid, after)
    )
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL


def load(target: Target, trace_id: str) -> PersistedTrace | None:
    async def body() -> PersistedTrace | None:
        store = await open_store(target.url, ensure_schema=False, **target.options)
        try:
            return await store.load(trace_id)
        finally:
            await store.close()

    return asyncio.run(body())


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    made = make_target(request.param, tmp_path)
    yield made
    if made.cleanup is not None:
        made.cleanup(made)


@pytest.mark.timeout(120)
def test_a_saga_killed_after_charging_is_compensated_once_by_another_process(
    target: Target, tmp_path: Path
) -> None:
    ledger, tid = tmp_path / "ledger.jsonl", "saga-1"
    run_child_until_killed(target, ledger, "saga", tid, after=0)  # after charge's checkpoint
    time.sleep(EXPIRY)
    proc = cli(target, ledger, *RECOVER)
    code, report, err = finish(proc)
    assert (code, report["resumed"], report["failed"]) == (0, 1, 0), err
    again, report2, err2 = finish(cli(target, ledger, *RECOVER))
    assert (again, report2["resumed"]) == (0, 0), err2
    lines = Ledger(ledger).lines()
    charges = [x for x in lines if x["kind"] == "charge"]
    refunds = [x for x in lines if x["kind"] == "refund"]
    assert len(charges) == 1 and charges[0]["key"] == f"{tid}:0"  # not charged again
    assert [(r["trace"], r["pid"]) for r in refunds] == [(tid, proc.pid)]
    trace = load(target, tid)
    assert trace is not None and trace.completion is CompletionState.COMPENSATED


@pytest.mark.timeout(180)
def test_a_step_that_kills_its_process_every_time_ends_poisoned_and_watch_stays_idle(
    target: Target, tmp_path: Path
) -> None:
    ledger, tid = tmp_path / "ledger.jsonl", "poison-1"
    run_child_until_killed(target, ledger, "poison", tid, after=-1)  # attempt 1
    for _ in range(poison.max_attempts - 1):  # attempts 2 and 3: recover dies with it
        time.sleep(EXPIRY)
        code, _, err = finish(cli(target, ledger, *RECOVER))
        assert code == -signal.SIGKILL, err
    time.sleep(EXPIRY)
    code, report, err = finish(cli(target, ledger, *RECOVER))
    assert (code, report["poisoned"], report["resumed"], report["exit_code"]) == (10, 1, 0, 10)
    watch = cli(target, ledger, "recover", "--app", "tests.crash.apps:app", "--watch",
                "--poll-interval", "0.1")  # fmt: skip
    time.sleep(2.0)
    assert watch.poll() is None  # alive: it did not take the trace again
    watch.send_signal(signal.SIGTERM)
    code, text, err = finish(watch)
    assert code == 10 and "1 poisoned" in text, err
    crashes = [x for x in Ledger(ledger).lines() if x["kind"] == "crash"]
    assert len(crashes) == poison.max_attempts
    trace = load(target, tid)
    assert trace is not None and trace.attempts == poison.max_attempts
    code, _, err = finish(cli(target, ledger, "resume", tid, "--app", "tests.crash.apps:app"))
    assert code == 10 and "max_attempts=3" in err, err
    code, listed, err = finish(
        cli(target, ledger, "traces", "list", "--poisoned", "--max-attempts", "3", "--json")
    )
    assert code == 0 and listed["trace_id"] == tid and listed["note"] == "poisoned", err
