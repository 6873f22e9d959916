"""A worker process of a campaign: `recover --watch` plus a stream of new runs.

Forked from the campaign's (synchronous) process. SIGTERM asks it to stop: no new run
starts, the runs in flight finish, and it writes its `exit` line (its failure counter
against the failures it saw) before exiting 0. SIGKILL and SIGSTOP are the campaign's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import random
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranvier import Axon, RanvierError, StoreUnavailable, open_store, recover
from ranvier.model import now_ms
from tests.faults import workload
from tests.faults.history import History, history_dir
from tests.faults.recording import RecordingStore

CONTEXT = multiprocessing.get_context("fork")


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    name: str
    url: str
    options: dict[str, Any]
    circuit: str
    run_dir: Path
    starts: tuple[tuple[str, bool], ...]
    """(trace id, faulty) of the runs this worker starts."""
    seed: int
    skew_ms: int = 0
    """This process's wall clock runs this far ahead (negative: behind)."""
    start_gap_s: float = 0.03
    pad: int = 0
    step_pause_s: float = 0.004
    """Each step sleeps up to this long (longer: more runs in flight at a pause)."""
    extra: dict[str, Any] = field(default_factory=dict)


_TERMINATED = threading.Event()
"""Set by SIGTERM (the handler is in place from the fork on: SIGTERM stays blocked until
it is, so a worker told to stop at once still stops cleanly)."""


def spawn(spec: WorkerSpec) -> Any:
    process = CONTEXT.Process(target=_main, args=(spec,), name=spec.name)
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    try:
        process.start()
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    return process


def _main(spec: WorkerSpec) -> None:
    signal.signal(signal.SIGTERM, lambda signum, frame: _TERMINATED.set())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    try:
        asyncio.run(work(spec))
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


def skew_clock(ms: int) -> None:
    """Shift this process's wall clock (`time.time`, `time.time_ns`) by `ms`."""
    real, real_ns = time.time, time.time_ns
    time.time = lambda: real() + ms / 1000
    time.time_ns = lambda: real_ns() + ms * 1_000_000


def _log_to_file(spec: WorkerSpec) -> None:
    path = spec.run_dir / "logs" / f"{spec.name}-{os.getpid()}.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)


async def _open(spec: WorkerSpec, history: History, stop: asyncio.Event) -> Any:
    """The store, retried while the server is away; None if stopped first."""
    while not stop.is_set():
        try:
            return await open_store(spec.url, ensure_schema=False, **spec.options)
        except StoreUnavailable as exc:
            history.record("open", result="StoreUnavailable", error=str(exc)[:200])
            await asyncio.sleep(0.1)
    return None


async def work(spec: WorkerSpec) -> None:
    if spec.skew_ms:
        skew_clock(spec.skew_ms)
    _log_to_file(spec)
    history = History(history_dir(spec.run_dir) / f"{spec.name}-{os.getpid()}.jsonl", spec.name)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if _TERMINATED.is_set():
        stop.set()
    history.record("started", skew_ms=spec.skew_ms, starts=len(spec.starts))
    inner = await _open(spec, history, stop)
    if inner is None:
        history.record("exit", counter=0, failures=0, recover="never opened")
        return
    store = RecordingStore(inner, history)
    with contextlib.suppress(StoreUnavailable):
        history.record("clock", local_minus_store=now_ms() - await inner.now_ms())
    rng = random.Random(spec.seed)
    axon = workload.pipeline(spec.circuit, rng, pause_s=spec.step_pause_s)
    ledger = workload.Ledger(workload.ledger_path(spec.run_dir))
    res = workload.resources(ledger)
    before = workload.checkpoint_failures(spec.circuit, inner.adapter)
    recovering = asyncio.create_task(
        recover(
            store, [axon], resources=res, watch=True, poll_interval=0.05, concurrency=4, stop=stop
        )
    )
    await _start_all(spec, store, axon, res, history, stop, rng)
    await stop.wait()
    report = await recovering
    for entry in report.traces:
        if entry.action == "failed":
            history.record("recover_failed", trace=entry.trace_id, reason=entry.reason[:300])
    counter = workload.checkpoint_failures(spec.circuit, inner.adapter) - before
    history.record(
        "exit",
        counter=counter,
        failures=store.recorder.failures,
        recover=str(report).splitlines()[0],
    )
    ledger.close()
    with contextlib.suppress(TimeoutError, RanvierError, OSError):
        await asyncio.wait_for(inner.close(), 10)


async def _start_all(
    spec: WorkerSpec,
    store: Any,
    axon: Axon,
    res: Any,
    history: History,
    stop: asyncio.Event,
    rng: random.Random,
) -> None:
    slots = asyncio.Semaphore(4)
    running: set[asyncio.Task[None]] = set()
    for trace_id, faulty in spec.starts:
        if stop.is_set():
            break
        await slots.acquire()
        task = asyncio.create_task(run_one(store, axon, res, history, trace_id, faulty, spec.pad))
        running.add(task)
        task.add_done_callback(running.discard)
        task.add_done_callback(lambda _: slots.release())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(0, 2 * spec.start_gap_s))
    if running:
        await asyncio.wait(running)


async def run_one(
    store: Any, axon: Axon, res: Any, history: History, trace_id: str, faulty: bool, pad: int
) -> None:
    history.record("run", trace=trace_id, faulty=faulty)
    try:
        result = await axon.run(
            workload.order(faulty, pad), store=store, trace_id=trace_id, resources=res
        )
    except RanvierError as exc:  # TraceBusy, StoreUnavailable: expected; others are not
        history.record("run_end", trace=trace_id, result=type(exc).__name__, error=str(exc)[:300])
        return
    completion = result.completion.value if result.completion else None
    history.record("run_end", trace=trace_id, result=result.status.value, completion=completion)
