"""Many contenders, one lease: exactly one wins each round (issue 6, item 4)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

import pytest

from ranvier import Lease
from tests.adapters import Opener
from tests.crash.targets import make_target
from tests.workers import procs
from tests.workers.spawn import CONTEXT, durable_adapters, finish, result, start, with_store

ROUNDS = 8


async def test_many_tasks_contend_for_one_lease_and_one_wins_each_round(
    store_opener: Opener,
) -> None:
    stores = [await store_opener() for _ in range(3)]
    trace_id = f"contended-{uuid.uuid4().hex[:8]}"
    tokens = []
    for _ in range(ROUNDS):
        gate = asyncio.Event()

        async def contend(i: int, gate: asyncio.Event = gate) -> Lease | None:
            await gate.wait()
            return await stores[i % 3].acquire_lease(trace_id, f"task-{i}", 60_000)

        tasks = [asyncio.create_task(contend(i)) for i in range(40)]
        await asyncio.sleep(0)
        gate.set()
        won = [lease for lease in await asyncio.gather(*tasks) if lease is not None]
        assert len(won) == 1
        assert await stores[1].get_lease(trace_id) == won[0]
        assert await stores[2].release_lease(won[0])
        tokens.append(won[0].token)
    assert tokens == sorted(set(tokens))  # every acquisition got a greater fencing token


@pytest.mark.parametrize("adapter", durable_adapters())
def test_processes_contend_for_one_lease_and_one_wins_each_round(
    adapter: str, tmp_path: Path
) -> None:
    target = make_target(adapter, tmp_path)
    try:
        with_store(target, lambda store: asyncio.sleep(0))  # creates the schema once
        trace_id = f"contended-{uuid.uuid4().hex[:8]}"
        barrier = CONTEXT.Barrier(4)
        outs = [tmp_path / f"p{i}.json" for i in range(4)]
        workers = [
            start(out, procs.contend, target.url, target.options, trace_id, i, ROUNDS, 10,
                  barrier)
            for i, out in enumerate(outs)
        ]  # fmt: skip
        finish(workers)
    finally:
        if target.cleanup is not None:
            target.cleanup(target)
    wins = [tuple(w) for out in outs for w in result(out)]
    assert Counter(r for r, _, _ in wins) == Counter(range(ROUNDS))  # one winner a round
    tokens = [token for _, _, token in sorted(wins)]
    assert tokens == sorted(set(tokens))
