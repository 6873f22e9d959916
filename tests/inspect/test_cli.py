"""`ranvier inspect`: its checks before serving, and a real server on loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from typer.testing import CliRunner

from ranvier import open_store
from ranvier.cli import app

QUIET = {"RANVIER_NO_PROGRESS": "1", "COLUMNS": "200"}


def test_actions_without_a_token_refuse_to_start(tmp_path: Path) -> None:
    env = {**QUIET, "RANVIER_INSPECT_TOKEN": ""}
    result = CliRunner().invoke(
        app, ["inspect", "--store", f"sqlite:///{tmp_path / 'x.db'}", "--allow-actions"], env=env
    )
    assert result.exit_code == 2, result.output
    assert "RANVIER_INSPECT_TOKEN" in result.output


def test_a_bad_app_refuses_to_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["inspect", "--store", f"sqlite:///{tmp_path / 'x.db'}", "--app", "nope"], env=QUIET
    )
    assert result.exit_code == 2 and "module:attribute" in result.output


def test_read_only_on_a_store_without_schema_refuses_to_start(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["inspect", "--store", f"sqlite:///{tmp_path / 'typo.db'}"], env=QUIET
    )
    assert result.exit_code == 11, result.output
    assert "no ranvier schema" in result.output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_command_serves_on_loopback_until_stopped(tmp_path: Path) -> None:
    asyncio.run(_create(f"sqlite:///{tmp_path / 'x.db'}"))
    port = _free_port()
    command = [
        sys.executable,
        "-m",
        "ranvier",
        "inspect",
        "--store",
        f"sqlite:///{tmp_path / 'x.db'}",
    ]
    env = {**os.environ, **QUIET, "RANVIER_INSPECT_PORT": str(port)}
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        deadline, health = time.monotonic() + 30, None
        while health is None and time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/healthz", timeout=2
                ) as answer:
                    health = answer.read().decode()
            except OSError:
                time.sleep(0.1)
        assert health is not None and '"status":"ok"' in health
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=20)
    assert process.returncode == 0, err
    assert f"on http://127.0.0.1:{port}/ (read-only)" in err
    assert f"Uvicorn running on http://127.0.0.1:{port}" in err


async def _create(url: str) -> None:
    store = await open_store(url)
    await store.close()
