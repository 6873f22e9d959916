"""A server crash and restart in the middle of a stream of appends loses no acknowledged one."""

from __future__ import annotations

import asyncio
import time

from ranvier import StoreUnavailable
from ranvier.stores.postgres import PostgresPersistenceStore
from tests.contract.helpers import envelope
from tests.postgres.own_server import own_postgres

PIPELINES = 8


async def _pipeline(
    store: PostgresPersistenceStore, trace_id: str, acked: list[int], stop: asyncio.Event
) -> int:
    """Append steps in order, retrying each one until stored; returns the failures seen."""
    failures, step = 0, 0
    while not stop.is_set():
        try:
            await store.append(envelope(trace_id, step, {"step": step}))
        except StoreUnavailable:
            failures += 1
            await asyncio.sleep(0.05)
            continue
        acked.append(step)
        step += 1
    return failures


async def test_a_server_restart_loses_no_acknowledged_append() -> None:
    with own_postgres() as server:
        store = await PostgresPersistenceStore.connect(
            server.url,
            min_connections=1,
            max_connections=4,
            acquire_timeout=2.0,
            connect_timeout=2.0,
        )
        try:
            await store.ensure_schema()
            stop = asyncio.Event()
            acked: dict[str, list[int]] = {f"p{n}": [] for n in range(PIPELINES)}
            tasks = [
                asyncio.create_task(_pipeline(store, t, steps, stop)) for t, steps in acked.items()
            ]
            await asyncio.sleep(1.0)
            before = sum(map(len, acked.values()))
            started = time.monotonic()
            await asyncio.to_thread(server.restart, "immediate")
            print(f"restart took {time.monotonic() - started:.2f} s after {before} appends")
            await asyncio.sleep(1.0)
            stop.set()
            failures = sum(await asyncio.gather(*tasks))
            after = sum(map(len, acked.values()))
            assert before > 0 and after > before, "appends did not resume after the restart"
            assert failures > 0, "the restart went unnoticed: it did not test anything"
            for trace_id, steps in acked.items():
                trace = await store.load(trace_id)
                assert trace is not None
                stored = [e.step for e in trace.events]
                assert stored == steps == list(range(len(steps))), trace_id
        finally:
            await store.close()
