"""Many concurrent writers with default settings (issue 14, item 3): 1,000 concurrent
runs on one store, and the same spread over several stores (connections) on one file,
all complete; nothing is refused for lack of a connection."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ranvier import Axon, CompletionState, RunStatus, StepContext, TraceStatus, open_store
from ranvier.stores.base import PersistenceStore

RUNS = 1000


def _step(name: str) -> Any:
    async def step(value: Any, ctx: StepContext) -> Any:
        await asyncio.sleep(0)  # a real step awaits something: the runs interleave
        return value + 1

    step.__name__ = name
    return step


def _pipeline() -> Axon:
    axon = Axon("concurrent", version="1")
    for name in ("a", "b", "c"):
        axon.then(_step(name))
    return axon


async def _run_all(stores: list[PersistenceStore]) -> None:
    axon = _pipeline()
    results = await asyncio.gather(
        *(axon.run(i, store=stores[i % len(stores)], trace_id=f"run-{i:04d}") for i in range(RUNS))
    )
    assert {(r.status, r.completion) for r in results} == {
        (RunStatus.COMPLETED, CompletionState.SUCCESS)
    }
    assert sorted(r.value for r in results) == [i + 3 for i in range(RUNS)]
    counts = await stores[0].count_traces_by_status()
    assert counts[TraceStatus.SUCCEEDED] == RUNS
    assert sum(counts.values()) == RUNS
    traces = await stores[0].load_many([f"run-{i:04d}" for i in range(RUNS)])
    assert {len(t.events) for t in traces} == {3} and len(traces) == RUNS


@pytest.mark.parametrize("stores", [1, 4], ids=["one store", "four stores on one file"])
async def test_a_thousand_concurrent_runs_complete_with_default_settings(
    tmp_path: Path, stores: int
) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    opened = [await open_store(url) for _ in range(stores)]
    try:
        await _run_all(opened)
    finally:
        for store in opened:
            await store.close()
