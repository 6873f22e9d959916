"""Four worker processes call `recover` at once over 100 interrupted traces (issue 6).

Every trace completes exactly once, every step after its last checkpoint runs exactly
once (its side effect is recorded by idempotency key in a separate SQLite database),
and the work spreads over the workers.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from ranvier import CompletionState
from ranvier.stores.base import PersistenceStore
from tests.crash import effects
from tests.crash.targets import make_target
from tests.workers import procs
from tests.workers.fleet import new_ids, seed
from tests.workers.spawn import CONTEXT, durable_adapters, finish, result, start, with_store

WORKERS = 4
TRACES = 100


async def _check_final(store: PersistenceStore, ids: list[str]) -> None:
    for trace_id in ids:
        trace = await store.load(trace_id)
        assert trace is not None and trace.completion is CompletionState.SUCCESS, trace_id
        assert [e.payload["n"] for e in trace.events] == [1, 2, 3, 4, 5], trace_id
        assert await store.get_lease(trace_id) is None, trace_id


@pytest.mark.parametrize("adapter", durable_adapters())
def test_four_workers_share_100_interrupted_traces_and_run_each_step_once(
    adapter: str, tmp_path: Path
) -> None:
    target = make_target(adapter, tmp_path)
    ledger = tmp_path / "effects.db"
    effects.connect(ledger).close()
    ids = new_ids(TRACES)
    try:
        first = with_store(target, lambda s: seed(s, ids, random.Random(TRACES)))
        barrier = CONTEXT.Barrier(WORKERS)
        outs = [tmp_path / f"worker{i}.json" for i in range(WORKERS)]
        args = (target.url, target.options, ledger, barrier)
        finish([start(out, procs.recover_once, *args) for out in outs])
        with_store(target, lambda s: _check_final(s, ids))
    finally:
        if target.cleanup is not None:
            target.cleanup(target)

    reports = [result(out) for out in outs]
    resumed = [trace_id for r in reports for trace_id in r["resumed"]]
    assert sorted(resumed) == ids  # every trace resumed by exactly one worker
    shares = [len(r["resumed"]) for r in reports]
    print(f"{adapter}: traces resumed per worker {shares}")
    assert all(share > 0 for share in shares), shares

    ran = Counter({key: len(runs) for key, runs in effects.executions(ledger, "step").items()})
    expected = {f"{t}:{step}" for t, k in first.items() for step in range(k, 5)}
    assert set(ran) == expected  # no checkpointed step ran, every later one did
    assert set(ran.values()) == {1}  # ... exactly once
