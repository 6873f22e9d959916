"""Clock skew: processes whose wall clock is an hour off decide nothing by it.

Each probe runs in a forked child with a skewed `time.time` and reports what it saw;
leases and the retention cutoff must follow the store's clock (`NOW()`, Redis `TIME`).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from ranvier import open_store
from ranvier.model import now_ms
from ranvier.ops import retention
from tests.crash.targets import Target
from tests.faults.worker import skew_clock
from tests.workers.spawn import finish, result, start

HOUR_MS = 3_600_000


async def _lease_probe(
    url: str, options: dict[str, Any], skew_ms: int, trace_id: str, take: bool
) -> dict[str, Any]:
    skew_clock(skew_ms)
    store = await open_store(url, ensure_schema=False, **options)
    try:
        store_now = await store.now_ms()
        if take:
            lease = await store.acquire_lease(trace_id, f"skew{skew_ms}", 5_000)
            return {"local_minus_store": now_ms() - store_now, "token": lease and lease.token}
        lease = await store.acquire_lease(trace_id, f"skew{skew_ms}", 5_000)
        live = await store.get_lease(trace_id)
        left = None if live is None else live.expires_at_ms - store_now
        return {
            "local_minus_store": now_ms() - store_now,
            "stolen": lease is not None,
            "ms_left": left,
        }
    finally:
        await store.close()


async def _retention_probe(
    url: str, options: dict[str, Any], skew_ms: int, window_ms: int, purge: bool
) -> dict[str, Any]:
    skew_clock(skew_ms)
    store = await open_store(url, ensure_schema=False, **options)
    try:
        if not purge:
            plan = await retention.plan(store, window_ms)
            return {
                "cutoff_minus_store": plan.cutoff_ms - await store.now_ms(),
                "would_purge": plan.traces,
            }
        report = await retention.purge(store, window_ms)
        return {"purged": report.traces}
    finally:
        await store.close()


def _in_child(tmp: Path, main: Any, *args: Any) -> dict[str, Any]:
    out = tmp / f"probe-{uuid.uuid4().hex[:8]}.json"
    finish([start(out, main, *args)])
    answer: dict[str, Any] = result(out)
    return answer


def probe_leases(target: Target, tmp: Path) -> list[str]:
    """A lease taken an hour ahead is live for a process an hour behind, and back."""
    problems: list[str] = []
    for holder, rival in ((HOUR_MS, -HOUR_MS), (-HOUR_MS, HOUR_MS)):
        trace_id = f"skew-{uuid.uuid4().hex[:8]}"
        took = _in_child(tmp, _lease_probe, target.url, target.options, holder, trace_id, True)
        tried = _in_child(tmp, _lease_probe, target.url, target.options, rival, trace_id, False)
        if abs(took["local_minus_store"] - holder) > 60_000 or took["token"] is None:
            problems.append(f"the skew was not in effect in the holder: {took}")
        if tried["stolen"] or not (0 < (tried["ms_left"] or 0) <= 5_000):
            problems.append(
                f"a clock {rival} ms off saw the lease of a clock {holder} ms off as {tried}"
            )
    return problems


def probe_retention(target: Target, tmp: Path, completed: int) -> list[str]:
    """An hour ahead, a 10-minute window purges nothing of what just completed; an hour
    behind, a zero window purges all of it: the cutoff is the store's clock."""
    args = (target.url, target.options)
    ahead = _in_child(tmp, _retention_probe, *args, HOUR_MS, 600_000, False)
    problems = []
    if ahead["would_purge"] != 0 or abs(ahead["cutoff_minus_store"] + 600_000) > 5_000:
        problems.append(f"an hour ahead, a 10-minute retention plan was {ahead}")
    time.sleep(0.05)  # completed_at < cutoff: the last completion is a little older
    behind = _in_child(tmp, _retention_probe, *args, -HOUR_MS, 0, True)
    if behind["purged"] != completed:
        problems.append(
            f"an hour behind, a zero-window purge removed {behind['purged']} of "
            f"{completed} completed traces"
        )
    return problems
