"""After the faults: finish every trace with `recover`, as an operator would.

An unfinished compensation (its claim taken, the hook's end never recorded) is decided
the way the runbook says: if the ledger shows the refund happened, mark it
compensated, else release the claim so the hook runs again.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

from ranvier import TraceStatus, recover
from tests.faults import workload
from tests.faults.history import History, history_dir
from tests.faults.recording import RecordingStore

OPEN = (TraceStatus.INTERRUPTED, TraceStatus.RUNNING)


async def open_traces(store: Any, circuit: str) -> list[str]:
    """Traces of `circuit` not completed, in one pass (a query per status could miss a
    trace whose lease runs out between the two)."""
    found: list[str] = []
    cursor = None
    while True:
        page = await store.list_traces(circuit=circuit, limit=500, cursor=cursor)
        found += [s.trace_id for s in page.items if s.status in OPEN]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


async def decide_unfinished(store: Any, circuit: str, ledger: workload.Ledger) -> int:
    decided = 0
    for record in await store.compensations.list_unfinished(limit=10_000):
        if f":{circuit}:" not in record.key:
            continue
        if ledger.has(record.key, "compensation"):
            await store.compensations.mark_compensated(record.key)
        else:
            await store.compensations.release(record.key)
        decided += 1
    return decided


async def drain(store: Any, circuit: str, run_dir: Path, timeout_s: float = 60) -> Counter[str]:
    """Recover until no trace of `circuit` is open (or the time is up)."""
    history = History(history_dir(run_dir) / "drain.jsonl", "drain")
    recorded = RecordingStore(store, history)
    ledger = workload.Ledger(workload.ledger_path(run_dir))
    axon = workload.pipeline(circuit, random.Random(0), pause_s=0)
    before = workload.checkpoint_failures(circuit, store.adapter)
    seen: Counter[str] = Counter()
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            report = await recover(
                recorded, [axon], resources=workload.resources(ledger), concurrency=8
            )
            seen["drain_resumed"] += report.resumed
            left = await open_traces(store, circuit)
            history.record(
                "drain_pass", resumed=report.resumed, failed=report.failed, left=len(left)
            )
            if not left or time.monotonic() > deadline:
                break
            seen["operator_decisions"] += await decide_unfinished(store, circuit, ledger)
            await asyncio.sleep(0.05)  # the leases of killed workers run out
    finally:
        counter = workload.checkpoint_failures(circuit, store.adapter) - before
        history.record("exit", counter=counter, failures=recorded.recorder.failures)
        history.close()
        ledger.close()
    return seen
