"""Forked worker processes against one durable store (a `tests.crash.targets.Target`).

Workers are forked from the synchronous test process (no event loop runs there), so
starting one costs a fork, not a new interpreter.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from ranvier.stores.base import PersistenceStore
from tests.crash.targets import ADAPTERS, Target
from tests.workers import procs

T = TypeVar("T")
CONTEXT = multiprocessing.get_context("fork")


def durable_adapters() -> list[str]:
    """The durable adapters present; `RANVIER_TEST_ADAPTERS` narrows a local run."""
    wanted = os.environ.get("RANVIER_TEST_ADAPTERS")
    if not wanted or os.environ.get("CI"):
        return list(ADAPTERS)
    keep = {w.strip() for w in wanted.split(",")}
    return [a for a in ADAPTERS if a in keep]


def with_store(target: Target, use: Callable[[PersistenceStore], Awaitable[T]]) -> T:
    """Open the target's store in a short-lived loop, run `use`, close it."""

    async def main() -> T:
        store = await target.open()
        try:
            return await use(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    finally:
        for thread in threading.enumerate():  # a driver's idle threads: gone before a fork
            if thread is not threading.main_thread():
                thread.join(5)


def start(out: Path | None, main: Callable[..., Awaitable[Any]], *args: Any) -> Any:
    process = CONTEXT.Process(target=procs.child, args=(out, main, *args))
    process.start()
    return process


def finish(processes: list[Any], timeout: float = 60) -> None:
    """Wait for every process; all must exit 0."""
    for process in processes:
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
    codes = [p.exitcode for p in processes]
    assert codes == [0] * len(processes), f"worker exit codes {codes}"


def result(out: Path) -> Any:
    return json.loads(out.read_text())
