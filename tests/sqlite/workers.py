"""Child processes for the SQLite tests: `python -m tests.sqlite.workers <command> ...`.

Each prints one line per acknowledged write, flushed, so the parent knows exactly what
was acknowledged before it kills or joins the child.
"""

from __future__ import annotations

import asyncio
import os
import sys

from ranvier import OutcomeKind, PersistenceEnvelope, TraceStart
from ranvier.stores.sqlite import SqlitePersistenceStore


def _envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit="durability",
        schematic_version="1",
        step=step,
        outcome_kind=OutcomeKind.NEXT,
        node_id=f"n{step}",
        payload={"step": step, "pid": os.getpid()},
    )


async def append_forever(path: str, tasks: int) -> None:
    """`tasks` concurrent appenders (so batches form), each on its own trace."""
    store = SqlitePersistenceStore(path)
    await store.ensure_schema()

    async def appender(worker: int) -> None:
        step = 0
        while True:
            await store.append(_envelope(f"kill-{worker}", step))
            print(f"ack kill-{worker} {step}", flush=True)
            step += 1

    await asyncio.gather(*(appender(w) for w in range(tasks)))


async def start_forever(path: str, tasks: int) -> None:
    """`tasks` concurrent runs starting new traces (a lease with a start), forever."""
    store = SqlitePersistenceStore(path)
    await store.ensure_schema()

    async def starter(worker: int) -> None:
        n = 0
        while True:
            trace_id = f"start-{worker}-{n}"
            start = TraceStart(circuit="durability", schematic_version="1", input={"n": n})
            lease = await store.acquire_lease(trace_id, f"w{worker}", 60_000, start=start)
            if lease is None:
                raise SystemExit(f"a new trace's lease was refused: {trace_id}")
            print(f"ack {trace_id} {n}", flush=True)
            n += 1

    await asyncio.gather(*(starter(w) for w in range(tasks)))


async def ensure_schema(path: str, name: str) -> None:
    store = SqlitePersistenceStore(path)
    try:
        await store.ensure_schema()
        await store.append(_envelope(f"schema-{name}", 0))
        print(f"ok {name}", flush=True)
    finally:
        await store.close()


async def contend(path: str, holder: str, traces: int) -> None:
    """Start runs on shared trace ids (`acquire_lease` with a start: the winner creates
    the trace with its input); write a trace only under a won lease (fenced)."""
    store = SqlitePersistenceStore(path)
    await store.ensure_schema()
    await store.get_lease("warm-up")  # connections open before the race starts
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # "go"
    try:
        for i in range(traces):
            trace_id = f"shared-{i}"
            start = TraceStart(circuit="durability", schematic_version="1", input={"by": holder})
            lease = await store.acquire_lease(trace_id, holder, 60_000, start=start)
            if lease is None:
                continue
            for step in range(3):
                await store.append(_envelope(trace_id, step), fence=lease.token)
            print(f"won {trace_id} {lease.token}", flush=True)
    finally:
        await store.close()


def main(argv: list[str]) -> None:
    command, path, *rest = argv
    if command == "append-forever":
        asyncio.run(append_forever(path, int(rest[0])))
    elif command == "start-forever":
        asyncio.run(start_forever(path, int(rest[0])))
    elif command == "ensure-schema":
        asyncio.run(ensure_schema(path, rest[0]))
    elif command == "contend":
        asyncio.run(contend(path, rest[0], int(rest[1])))
    else:
        raise SystemExit(f"unknown command {command!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
