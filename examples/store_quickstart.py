"""Checkpoint three steps, "crash", reopen, resume, complete: the SQLite store in brief.

Run: python examples/store_quickstart.py  (keeps ranvier.db in the working directory)
"""

import asyncio
import uuid

from ranvier import CompletionState, PersistenceEnvelope, open_store


async def main() -> None:
    trace_id = f"order-{uuid.uuid4().hex[:8]}"
    store = await open_store()  # sqlite:///ranvier.db unless RANVIER_STORE_URL is set
    for step, node in enumerate(["validate", "charge", "reserve"]):
        await store.append(
            PersistenceEnvelope(
                trace_id=trace_id,
                circuit="order-pipeline",
                schematic_version="1.0",
                step=step,
                node_id=node,
                payload={"order": "abc", "done": node},
            )
        )
    await store.close()  # the "crash": every acknowledged append is already on disk

    store = await open_store()  # a new process would do the same
    trace = await store.load(trace_id)
    assert trace is not None
    for event in trace.events:
        print(f"step {event.step} {event.node_id}: {event.payload}")
    cursor = await store.resume(trace_id, trace.events[-1].step)
    print(f"resume {trace_id} at step {cursor.next_step}")
    await store.complete(trace_id, CompletionState.SUCCESS)
    done = await store.load(trace_id)
    print(f"completed: {done.completion.value if done and done.completion else None}")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
