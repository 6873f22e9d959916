"""A separate process for the AOF restart test: `write` or `resume` one trace.

python -m tests.redis.aof_worker write|resume REDIS_URL TRACE_ID
"""

from __future__ import annotations

import asyncio
import sys

from ranvier import CompletionState, PersistenceEnvelope
from ranvier.stores.redis import RedisPersistenceStore

STEPS = 3


def _envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit="orders",
        schematic_version="1.0",
        step=step,
        node_id=f"node{step}",
        payload={"step": step},
    )


async def write(url: str, trace_id: str) -> None:
    async with await RedisPersistenceStore.connect(url) as store:
        for step in range(STEPS):
            await store.append(_envelope(trace_id, step))


async def resume(url: str, trace_id: str) -> None:
    async with await RedisPersistenceStore.connect(url) as store:
        trace = await store.load(trace_id)
        assert trace is not None and trace.completion is None, trace
        assert trace.last_step == STEPS - 1, trace
        cursor = await store.resume(trace_id, trace.last_step)
        await store.append(_envelope(trace_id, cursor.next_step))
        await store.complete(trace_id, CompletionState.SUCCESS)


if __name__ == "__main__":
    action, url, trace_id = sys.argv[1:4]
    asyncio.run({"write": write, "resume": resume}[action](url, trace_id))
