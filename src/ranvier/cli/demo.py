"""`ranvier demo`: an order pipeline that crashes, resumes, faults and compensates.

1. Order A runs in a worker process that is killed (SIGKILL) in the middle of `reserve`,
   after `validate` and `charge` were checkpointed.
2. This process resumes order A after the crashed worker's lease expires: `charge` is not
   run again, `reserve` runs again with the same idempotency key, the order completes.
3. Order B asks for an item that is out of stock: `reserve` faults, the compensation
   hook refunds the charge (once), and the trace completes as compensated.
4. Each trace's timeline is printed as a table.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from ranvier.errors import TraceBusy
from ranvier.model import CompensationContext, CompletionState, PersistedTrace
from ranvier.runtime import Axon, LeaseSettings, Outcome, RunResult, StepContext
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import open_store

DEMO_DB = "ranvier-demo.db"
STOCK = {"widget": 25, "gadget": 0}
LEASE = LeaseSettings(ttl_ms=2_000, renew_every_ms=500)
console = Console(highlight=False)


# --- the pipeline ------------------------------------------------------------------


def validate(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if order["qty"] <= 0 or order["item"] not in STOCK:
        raise ValueError(f"invalid order {order}")
    say(ctx, f"order {order['id']} is valid")
    return {**order, "validated": True}


async def charge(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    amount = order["qty"] * order["price"]
    say(ctx, f"charged {amount} to the card (payment key {ctx.idempotency_key})")
    return {**order, "payment": {"key": ctx.idempotency_key, "amount": amount}}


async def reserve(order: dict[str, Any], ctx: StepContext) -> Any:
    say(ctx, f"reserving {order['qty']} x {order['item']} (attempt key {ctx.idempotency_key})")
    if ctx.resources.get("crash_in") == ctx.node_id:
        say(ctx, "the worker process is killed now (SIGKILL), mid-step")
        sys.stdout.flush()
        kill_this_process()
    if STOCK[order["item"]] < order["qty"]:
        return Outcome.fault("out_of_stock", f"no {order['item']} left")
    return {**order, "reserved": True}


def confirm(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    say(ctx, f"order {order['id']} confirmed")
    return {**order, "status": "confirmed"}


async def refund(context: CompensationContext) -> None:
    console.print(
        f"  [compensation] refund of trace {context.trace_id} after {context.fault_kind} "
        f"at step {context.fault_step} (runs at most once)",
        markup=False,
    )


def order_pipeline() -> Axon:
    return (
        Axon("order-pipeline", version="1.0", lease=LEASE, compensation=refund)
        .then(validate)
        .then(charge)
        .then(reserve)
        .then(confirm)
    )


def say(ctx: StepContext, text: str) -> None:
    console.print(f"  [pid {os.getpid()}] step {ctx.step} {ctx.node_id}: {text}", markup=False)


def kill_this_process() -> None:
    sigkill = getattr(signal, "SIGKILL", None)
    if sigkill is None:  # Windows has no SIGKILL: end as abruptly as it allows
        os._exit(137)
    os.kill(os.getpid(), sigkill)


# --- the crashing worker (a child process) -----------------------------------------


def crashing_worker(url: str, trace_id: str, order: dict[str, Any]) -> None:
    asyncio.run(_crash(url, trace_id, order))


async def _crash(url: str, trace_id: str, order: dict[str, Any]) -> None:
    store = await open_store(url)
    resources = {"crash_in": "reserve"}
    await order_pipeline().run(order, store=store, trace_id=trace_id, resources=resources)


# --- the demo ----------------------------------------------------------------------


async def resume_when_free(axon: Axon, store: PersistenceStore, trace_id: str) -> RunResult:
    """Resume once the crashed worker's lease has expired (its holder is dead)."""
    while True:
        try:
            return await axon.resume(trace_id, store=store)
        except TraceBusy:
            await asyncio.sleep(0.1)


def timeline(trace: PersistedTrace) -> Table:
    table = Table(title=f"trace {trace.trace_id}: {trace.completion or 'open'}")
    for column in ("step", "node", "outcome", "at (ms)", "payload"):
        table.add_column(column)
    rows = sorted([*trace.superseded_events, *trace.events], key=lambda e: e.timestamp_ms)
    start = rows[0].timestamp_ms if rows else 0
    for event in rows:
        payload = orjson.dumps(event.payload).decode()
        table.add_row(
            str(event.step),
            event.node_id or "-",
            event.outcome_kind.value,
            f"+{event.timestamp_ms - start}",
            payload if len(payload) <= 44 else payload[:41] + "...",
        )
    if trace.resumed_from_step is not None:
        table.caption = f"resumed after step {trace.resumed_from_step}"
    return table


def reset(url: str) -> None:
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)


async def demo(url: str, suffix: str = "") -> int:
    trace_a, trace_b = f"order-A-1001{suffix}", f"order-B-2002{suffix}"
    store = await open_store(url)
    axon = order_pipeline()
    order_a = {"id": "A-1001", "item": "widget", "qty": 2, "price": 30}
    order_b = {"id": "B-2002", "item": "gadget", "qty": 1, "price": 99}
    try:
        console.rule("1. order A: a worker process crashes mid-run")
        exitcode = run_in_crashing_process(url, trace_a, order_a)
        before = await store.load(trace_a)
        last = before.events[-1] if before and before.events else None
        console.print(
            f"  worker crashed: killed with exit code {exitcode}; last checkpoint is step "
            f"{last.step if last else '-'} ({last.node_id if last else '-'}), trace still open"
        )
        console.rule("2. order A: resume in this process")
        console.print("  waiting for the dead worker's lease to expire, then resuming...")
        resumed = await resume_when_free(axon, store, trace_a)
        console.print(
            f"  resumed: {resumed.steps_run} step(s) run, completion {resumed.completion}"
        )
        console.rule("3. order B: out of stock, compensated")
        faulted = await axon.run(order_b, store=store, trace_id=trace_b)
        console.print(
            f"  fault {faulted.outcome.fault_kind}: {faulted.outcome.message}; "
            f"completion {faulted.completion}"
        )
        console.rule("4. timelines")
        for trace_id in (trace_a, trace_b):
            trace = await store.load(trace_id)
            if trace is not None:
                console.print(timeline(trace))
    finally:
        await store.close()
    ok = (
        resumed.completion is CompletionState.SUCCESS
        and faulted.completion is CompletionState.COMPENSATED
    )
    return 0 if ok else 1


def run_in_crashing_process(url: str, trace_id: str, order: dict[str, Any]) -> int | None:
    context = multiprocessing.get_context("spawn")
    worker = context.Process(target=crashing_worker, args=(url, trace_id, order))
    worker.start()
    worker.join()
    return worker.exitcode


def main(store_url: str | None = None) -> int:
    """Run the demo on `store_url` (default: a fresh ./ranvier-demo.db); 0 on success."""
    url = store_url or f"sqlite:///{DEMO_DB}"
    if url.startswith("memory:"):
        console.print("the demo needs a durable store shared by two processes (not memory://)")
        return 2
    # the default demo file starts afresh; on a store you name, the traces get new ids
    suffix = "" if store_url is None else f"-{uuid.uuid4().hex[:6]}"
    if store_url is None:
        reset(url)
    console.print(f"ranvier demo on {url}")
    return asyncio.run(demo(url, suffix))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else None))
