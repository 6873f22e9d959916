from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from ranvier import CompletionState
from ranvier.ops import metrics
from ranvier.stores.base import PersistenceStore
from tests.cli.conftest import Target
from tests.cli.traces import make_trace


def _seed(target: Target) -> None:
    async def work(store: PersistenceStore) -> None:
        await store.import_trace(make_trace("m1"))
        await store.import_trace(make_trace("m2", completion=CompletionState.SUCCESS))
        await store.import_trace(make_trace("m3", completion=CompletionState.FAULT))
        await store.import_trace(make_trace("m4", completion=CompletionState.FAULT))

    target.with_store(work)


def test_traces_by_status_are_read_from_the_store_on_scrape(target: Target) -> None:
    _seed(target)
    registry = CollectorRegistry()
    runner = metrics.StoreThread(target.url, options=target.options)
    try:
        registry.register(metrics.TraceStatusCollector(runner))
        text = generate_latest(registry).decode()
    finally:
        runner.close()
    assert 'ranvier_traces{status="interrupted"} 1.0' in text
    assert 'ranvier_traces{status="succeeded"} 1.0' in text
    assert 'ranvier_traces{status="faulted"} 2.0' in text
    assert 'ranvier_traces{status="cancelled"} 0.0' in text
    assert "ranvier_store_up 1.0" in text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_metrics_serve_exposes_runtime_and_store_metrics(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}"
    target = Target("sqlite", url)
    _seed(target)
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "ranvier", "metrics", "serve", "--store", url,
         "--port", str(port), "--address", "127.0.0.1"],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        text = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    text = r.read().decode()
                break
            except OSError:
                assert server.poll() is None, server.stderr and server.stderr.read()
                time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=10)
        if server.stderr:
            server.stderr.close()
    assert 'ranvier_traces{status="faulted"} 2.0' in text
    assert "# TYPE ranvier_checkpoint_failures_total counter" in text
    assert "# TYPE ranvier_checkpoint_latency_seconds histogram" in text
