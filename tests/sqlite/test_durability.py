"""Acknowledged appends and starts survive a SIGKILLed writer (WAL, synchronous=NORMAL)."""

from __future__ import annotations

import signal
from pathlib import Path

from ranvier.stores.sqlite import SqlitePersistenceStore
from tests.sqlite.helpers import spawn

ACKS_BEFORE_KILL = 400


def _acks_then_kill(*args: str) -> set[tuple[str, int]]:
    """Run a worker until it acknowledged ACKS_BEFORE_KILL writes, then SIGKILL it."""
    child = spawn(*args)
    acked: set[tuple[str, int]] = set()
    try:
        assert child.stdout is not None
        for line in child.stdout:
            _, trace_id, number = line.split()
            acked.add((trace_id, int(number)))
            if len(acked) >= ACKS_BEFORE_KILL:
                break
        child.send_signal(signal.SIGKILL)  # no close(), no checkpoint: a hard crash
    finally:
        child.kill()
        _, stderr = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, stderr
    assert len(acked) >= ACKS_BEFORE_KILL, stderr
    return acked


async def test_every_acknowledged_append_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "killed.db"
    acked = _acks_then_kill("append-forever", str(path), "8")

    async with SqlitePersistenceStore(path) as store:
        stored: set[tuple[str, int]] = set()
        for worker in range(8):
            trace = await store.load(f"kill-{worker}")
            if trace is not None:
                stored.update((trace.trace_id, e.step) for e in trace.events)
                assert [e.step for e in trace.events] == list(range(len(trace.events)))
    assert acked <= stored, f"lost acknowledged appends: {sorted(acked - stored)[:10]}"


async def test_every_acknowledged_start_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "started.db"
    acked = _acks_then_kill("start-forever", str(path), "8")
    async with SqlitePersistenceStore(path) as store:
        for trace_id, n in sorted(acked):
            trace = await store.load(trace_id)
            assert trace is not None, f"lost an acknowledged start: {trace_id}"
            assert (trace.input, trace.attempts, trace.events) == ({"n": n}, 1, ())
