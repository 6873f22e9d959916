"""A worker paused (SIGSTOP) past its lease is fenced off for good (issue 6, item 4).

Another worker takes the trace over and finishes it; the paused one, continued, gets
`LeaseLost` on its next write and nothing it tries is stored.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from ranvier import CompletionState, PersistedTrace, RecoveryReport, recover
from ranvier.stores.base import PersistenceStore
from tests.crash.targets import make_target
from tests.workers import procs
from tests.workers.spawn import durable_adapters, finish, result, start, with_store


async def _take_over(
    store: PersistenceStore, trace_id: str
) -> tuple[RecoveryReport, PersistedTrace]:
    deadline = time.monotonic() + 20
    while await store.get_lease(trace_id) is not None:  # the paused holder's lease runs out
        assert time.monotonic() < deadline, "the paused holder's lease never expired"
        await asyncio.sleep(0.05)
    report = await recover(store, [procs.paused_pipeline("taker", None)], holder="taker")
    trace = await store.load(trace_id)
    assert trace is not None
    return report, trace


def _wait_for(path: Path, process: Any) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert process.exitcode is None, f"the holder exited early ({process.exitcode})"
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.005)


@pytest.mark.parametrize("adapter", durable_adapters())
def test_a_holder_paused_past_its_lease_writes_nothing_after_a_takeover(
    adapter: str, tmp_path: Path
) -> None:
    target = make_target(adapter, tmp_path)
    trace_id = f"paused-{uuid.uuid4().hex[:8]}"
    marker, out = tmp_path / "in-slow", tmp_path / "holder.json"
    try:
        with_store(target, lambda store: asyncio.sleep(0))
        holder = start(out, procs.paused_holder, target.url, target.options, trace_id, marker)
        _wait_for(marker, holder)
        os.kill(holder.pid, signal.SIGSTOP)
        try:
            report, taken_over = with_store(target, lambda s: _take_over(s, trace_id))
        finally:
            os.kill(holder.pid, signal.SIGCONT)
        finish([holder])
        after = with_store(target, lambda s: s.load(trace_id))
    finally:
        if target.cleanup is not None:
            target.cleanup(target)

    assert report.ids("resumed") == [trace_id]
    assert taken_over.completion is CompletionState.SUCCESS
    assert [e.payload["by"] for e in taken_over.events] == ["holder", "taker", "taker"]
    assert after == taken_over  # nothing the continued holder tried was stored

    held = result(out)
    assert held["status"] == "lease_lost"
    writes = [tuple(w) for w in held["writes"]]
    assert writes[0] == ("append", "ok")  # step `a`, before the pause
    after_pause = writes[1:]
    assert ("append", "LeaseLost") in after_pause  # the checkpoint of `slow`: rejected
    assert all(error == "LeaseLost" for _, error in after_pause), writes
