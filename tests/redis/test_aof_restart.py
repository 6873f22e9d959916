"""Guarantee 1 on Redis: with AOF `appendfsync always`, a trace written by one process
survives a server restart (SIGTERM or SIGKILL) and another process resumes it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ranvier import CompletionState
from ranvier.stores.redis import RedisPersistenceStore
from tests.contract.helpers import must_load
from tests.redis.conftest import trace_id
from tests.redis.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]


def _worker(action: str, url: str, tid: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.redis.aof_worker", action, url, tid],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_an_aof_server_restart_keeps_the_trace_for_another_process(
    aof_server: RedisServer, sig: int
) -> None:
    tid = trace_id()
    await asyncio.to_thread(_worker, "write", aof_server.url, tid)
    await asyncio.to_thread(aof_server.restart, sig)
    await asyncio.to_thread(_worker, "resume", aof_server.url, tid)
    async with await RedisPersistenceStore.connect(aof_server.url) as store:
        trace = await must_load(store, tid)
    assert [e.step for e in trace.events] == [0, 1, 2, 3]
    assert [e.payload for e in trace.events] == [{"step": s} for s in range(4)]
    assert trace.resumed_from_step == 2
    assert trace.completion is CompletionState.SUCCESS
