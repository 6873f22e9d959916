"""The store runs out of room: SQLite's file is full, Redis reaches `maxmemory`.

In one process: the workload runs until writes fail, then the test checks the errors
are clear, the file is intact or nothing is half-written, gives the room back, drains
with `recover` and runs the checker.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ranvier import StoreUnavailable, open_store
from ranvier.stores.redis import keys as redis_keys
from ranvier.stores.sqlite import connection as sqlite_connection
from tests.crash import effects
from tests.faults import workload
from tests.faults.checker import Verdict, check
from tests.faults.drain import drain
from tests.faults.history import History, history_dir, read_all
from tests.faults.recording import RecordingStore
from tests.faults.worker import run_one
from tests.redis.servers import RedisServer, cli

NO_LIMIT = 1_073_741_823


async def _workload(store: Any, circuit: str, run_dir: Path, traces: int, pad: int) -> list[str]:
    """Run `traces` orders, eight at a time; the store errors the runs met."""
    history = History(history_dir(run_dir) / "inproc.jsonl", "inproc")
    recorded = RecordingStore(store, history)
    ledger = workload.Ledger(workload.ledger_path(run_dir))
    rng = random.Random(circuit)
    axon = workload.pipeline(circuit, rng, pause_s=0)
    before = workload.checkpoint_failures(circuit, store.adapter)
    slots = asyncio.Semaphore(8)
    errors: list[str] = []

    async def one(n: int) -> None:
        async with slots:
            trace_id = f"{circuit}-{n}"
            await run_one(
                recorded,
                axon,
                workload.resources(ledger),
                history,
                trace_id,
                rng.random() < 0.25,
                pad,
            )

    await asyncio.gather(*(one(n) for n in range(traces)))
    counter = workload.checkpoint_failures(circuit, store.adapter) - before
    history.record("exit", counter=counter, failures=recorded.recorder.failures)
    history.close()
    ledger.close()
    for line in read_all(run_dir):
        if line.get("result") == StoreUnavailable.__name__:
            errors.append(line["error"])
    return errors


async def _finish(store: Any, circuit: str, run_dir: Path, verdict: Verdict) -> Verdict:
    drained = await drain(store, circuit, run_dir)
    checked = await check(store, circuit, run_dir, killed=set())
    checked.anomalies[:0] = verdict.anomalies
    checked.counts.update(verdict.counts)
    checked.counts.update(drained)
    return checked


# --- SQLite: max_page_count -----------------------------------------------------------


@contextmanager
def _page_limit(pages: int, opened: list[sqlite3.Connection]) -> Iterator[None]:
    """Every connection the SQLite store opens meanwhile gets `max_page_count = pages`."""
    original = sqlite_connection.connect
    modules = [m for m in _sqlite_modules() if getattr(m, "connect", None) is original]

    def limited(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = original(*args, **kwargs)
        conn.execute(f"PRAGMA max_page_count = {pages}")
        opened.append(conn)
        return conn

    for module in modules:
        module.connect = limited
    try:
        yield
    finally:
        for module in modules:
            module.connect = original


def _sqlite_modules() -> list[Any]:
    return [m for name, m in sys.modules.items() if name.startswith("ranvier.stores.sqlite")]


async def disk_full(seed: int, traces: int, tmp: Path) -> Verdict:
    path, circuit, run_dir = tmp / "full.db", f"faults-diskfull-{seed}", tmp / "run"
    run_dir.mkdir()
    effects.connect(workload.ledger_path(run_dir)).close()
    url = f"sqlite:///{path}"
    await (await open_store(url)).close()  # the schema, before the limit
    with sqlite3.connect(path) as probe:
        pages = int(probe.execute("PRAGMA page_count").fetchone()[0])
    opened: list[sqlite3.Connection] = []
    verdict = Verdict()
    store = await open_store(url, ensure_schema=False)
    try:
        with _page_limit(pages + 48, opened):  # connections open on first use
            errors = await _workload(store, circuit, run_dir, traces, pad=1500)
        verdict.counts["disk_full_errors"] = len(errors)
        unclear = [e for e in errors if "database or disk is full" not in e]
        if unclear:
            verdict.anomalies.append(f"unclear disk-full errors: {unclear[:3]}")
        with sqlite3.connect(path) as probe:
            integrity = probe.execute("PRAGMA integrity_check").fetchall()
        if integrity != [("ok",)]:
            verdict.anomalies.append(f"the file is damaged: {integrity}")
        for conn in opened:  # room again, for the same store
            conn.execute(f"PRAGMA max_page_count = {NO_LIMIT}")
        return await _finish(store, circuit, run_dir, verdict)
    finally:
        await store.close()


# --- Redis: maxmemory with noeviction ---------------------------------------------------


def _used_memory(port: int) -> int:
    info = cli(port, "INFO", "memory")
    line = next(x for x in info.splitlines() if x.startswith("used_memory:"))
    return int(line.split(":")[1])


async def _half_written(client: Any, prefix: str) -> list[str]:
    """Traces whose state hash and events disagree (a write that stopped half-way)."""
    problems = []
    async for state_key in client.scan_iter(match=redis_keys.state_pattern(prefix), count=500):
        key = state_key.decode()
        state = await client.hgetall(key)
        events = await client.hkeys(redis_keys.keys_of_state_key(key)[1])
        last = max((int(e) for e in events), default=-1)
        if int(state.get(b"last", b"-1")) != last or b"circuit" not in state:
            problems.append(f"{key}: state {state.get(b'last')} vs events up to {last}")
    return problems


async def maxmemory(seed: int, traces: int, tmp: Path) -> Verdict:
    root = Path(tempfile.mkdtemp(prefix="ranvier-faults-mm-", dir=tmp))
    server = RedisServer.start(root, "--appendonly", "no", "--maxmemory-policy", "noeviction")
    circuit, run_dir = f"faults-maxmemory-{seed}", tmp / "run"
    run_dir.mkdir()
    effects.connect(workload.ledger_path(run_dir)).close()
    prefix = f"ranvier:mm{uuid.uuid4().hex[:6]}"
    verdict = Verdict()
    try:
        store: Any = await open_store(server.url, prefix=prefix)
        cli(server.port, "CONFIG", "SET", "maxmemory", str(_used_memory(server.port) + 400_000))
        errors = await _workload(store, circuit, run_dir, traces, pad=2000)
        verdict.counts["maxmemory_errors"] = len(errors)
        unclear = [e for e in errors if "maxmemory" not in e]
        if unclear:
            verdict.anomalies.append(f"unclear out-of-memory errors: {unclear[:3]}")
        verdict.anomalies += await _half_written(store.client, prefix)
        cli(server.port, "CONFIG", "SET", "maxmemory", "0")
        try:
            return await _finish(store, circuit, run_dir, verdict)
        finally:
            await store.close()
    finally:
        server.stop()
