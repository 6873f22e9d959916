from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ranvier import CompletionState, PersistenceEnvelope
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Cli, Target, assert_one_line_error, make_target

APP = "tests.cli.pipelines:pipelines"


def _interrupt(target: Target, *trace_ids: str, circuit: str = "cli-orders") -> None:
    """Traces that crashed after their first step (validate) was checkpointed."""

    async def work(store: PersistenceStore) -> None:
        for trace_id in trace_ids:
            await store.append(
                PersistenceEnvelope(
                    trace_id=trace_id, circuit=circuit, schematic_version="1.0", step=0,
                    node_id="validate", payload={"id": trace_id, "amount": 7, "valid": True},
                )
            )  # fmt: skip

    target.with_store(work)


def _completion(target: Target, trace_id: str) -> CompletionState | None:
    async def work(store: PersistenceStore) -> CompletionState | None:
        trace = await store.load(trace_id)
        assert trace is not None
        return trace.completion

    return target.with_store(work)


def test_resume_finishes_an_interrupted_trace(cli: Cli, target: Target) -> None:
    _interrupt(target, "crashed-1")
    result = cli(target, "resume", "crashed-1", "--app", "tests.cli.pipelines:orders", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["completion"], report["steps_run"]) == ("success", 2)
    assert report["value"] == {"id": "crashed-1", "amount": 7, "valid": True, "charged": 7,
                               "shipped": True}  # fmt: skip


def test_resume_uses_the_app_from_the_environment(cli: Cli, target: Target) -> None:
    _interrupt(target, "crashed-env")
    result = cli(target, "resume", "crashed-env", env={"RANVIER_APP": APP})
    assert result.exit_code == 0, result.output
    assert "crashed-env: completed (success), 2 step(s) run" in result.stdout


@pytest.mark.parametrize(
    ("app", "fragment"),
    [
        ("tests.cli.pipelines", "module:attribute"),
        ("tests.cli.nowhere:orders", "cannot import"),
        ("tests.cli.pipelines:missing", "no attribute"),
        ("tests.cli.pipelines:not_an_axon", "not an Axon"),
    ],
)
def test_resume_rejects_a_bad_app(cli: Cli, target: Target, app: str, fragment: str) -> None:
    _interrupt(target, "crashed-2")
    assert_one_line_error(cli(target, "resume", "crashed-2", "--app", app), 2, fragment)


def test_resume_of_a_trace_of_another_circuit_names_it(cli: Cli, target: Target) -> None:
    _interrupt(target, "other", circuit="elsewhere")
    result = cli(target, "resume", "other", "--app", APP)
    assert_one_line_error(result, 2, "elsewhere")


def test_recover_resumes_known_circuits_and_reports_unknown(cli: Cli, target: Target) -> None:
    _interrupt(target, "r1", "r2", "r3")
    _interrupt(target, "stranger", circuit="elsewhere")
    result = cli(target, "recover", "--app", APP, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["resumed"], report["unknown"], report["failed"]) == (3, 1, 0)
    assert all(_completion(target, t) is CompletionState.SUCCESS for t in ("r1", "r2", "r3"))
    assert _completion(target, "stranger") is None
    again = cli(target, "recover", "--app", APP)
    assert "0 resumed" in again.stdout and again.exit_code == 0


def test_intervene_then_resume_runs_the_override(cli: Cli, target: Target) -> None:
    _interrupt(target, "steer")
    stored = cli(
        target,
        "intervene",
        "steer",
        "--node",
        "charge",
        "--payload",
        '{"id": "steer", "amount": 99}',
    )
    assert stored.exit_code == 0, stored.output
    result = cli(target, "resume", "steer", "--app", APP, "--json")
    assert json.loads(result.stdout)["value"]["charged"] == 99


def test_intervene_rejects_bad_json_and_unknown_traces(cli: Cli, target: Target) -> None:
    _interrupt(target, "steer")
    bad = cli(target, "intervene", "steer", "--node", "charge", "--payload", "{amount: 1}")
    assert_one_line_error(bad, 2, "--payload is not JSON")
    ghost = cli(target, "intervene", "ghost", "--node", "charge", "--payload", "{}")
    assert_one_line_error(ghost, 5, "ghost")


def test_cancel_completes_as_cancelled_once(cli: Cli, target: Target) -> None:
    _interrupt(target, "stop-me")
    first = cli(target, "cancel", "stop-me")
    assert first.exit_code == 0, first.output
    assert _completion(target, "stop-me") is CompletionState.CANCELLED
    assert "already cancelled" in cli(target, "cancel", "stop-me").stdout
    resumed = cli(target, "recover", "--app", APP, "--json")
    assert json.loads(resumed.stdout)["resumed"] == 0


def test_cancel_of_a_finished_trace_is_a_conflict(cli: Cli, target: Target) -> None:
    _interrupt(target, "done")
    assert cli(target, "resume", "done", "--app", APP).exit_code == 0
    assert_one_line_error(cli(target, "cancel", "done"), 4, "success")


def test_recover_watch_picks_up_new_traces_until_sigterm(tmp_path: Path) -> None:
    target = make_target("sqlite", tmp_path, "watch")
    _interrupt(target, "w1")
    worker = subprocess.Popen(
        [sys.executable, "-m", "ranvier", "recover", "--app", APP, "--watch",
         "--poll-interval", "0.2", "--store", target.url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=Path(__file__).parents[2],
    )  # fmt: skip
    try:
        _wait_until(lambda: _completion(target, "w1") is CompletionState.SUCCESS)
        _interrupt(target, "w2")  # crashed after the worker started: found on a later pass
        _wait_until(lambda: _completion(target, "w2") is CompletionState.SUCCESS)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "recover: 2 resumed" in out


def _wait_until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_intervene_checks_the_step_with_app_and_needs_a_payload(cli: Cli, target: Target) -> None:
    _interrupt(target, "steer-1")
    unknown = cli(target, "intervene", "steer-1", "--node", "chrage", "--payload", "{}",
                  "--app", APP)  # fmt: skip
    assert_one_line_error(unknown, 2, "no step named 'chrage'")
    missing = cli(target, "intervene", "steer-1", "--node", "charge")
    assert_one_line_error(missing, 2, "--payload null")
    null = cli(target, "intervene", "steer-1", "--node", "charge", "--payload", "null",
               "--app", APP)  # fmt: skip
    assert null.exit_code == 0, null.output

    async def pending(store: PersistenceStore) -> object:
        from ranvier.rules import pending_intervention

        trace = await store.load("steer-1")
        assert trace is not None
        return pending_intervention(trace)

    assert target.with_store(pending) is not None
    cleared = cli(target, "intervene", "steer-1", "--clear", "--json")
    assert cleared.exit_code == 0 and json.loads(cleared.stdout)["cleared"] is True
    assert target.with_store(pending) is None
    again = cli(target, "intervene", "steer-1", "--clear")
    assert "no pending intervention" in again.stdout
    resumed = cli(target, "resume", "steer-1", "--app", APP, "--json")
    assert json.loads(resumed.stdout)["steps_run"] == 2  # after validate, as if never steered
