"""Pipelines for the multi-process recovery tests, as a worker sees them: `--app
tests.crash.apps:app` imports this module (nothing runs at import).

Every effect is a JSON line appended to the ledger file named by RANVIER_TEST_LEDGER
(one small O_APPEND write per line, so lines of concurrent processes never mix). The
ledger is handed to steps and hooks as a resource, opened by the App's factory.
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from ranvier import App, Axon, CompensationContext, LeaseSettings, Outcome, StepContext

LEASE = LeaseSettings(ttl_ms=500, renew_every_ms=150)


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def record(self, **fields: Any) -> None:
        line = orjson.dumps({**fields, "pid": os.getpid()}) + b"\n"
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [orjson.loads(line) for line in self.path.read_bytes().splitlines()]


class Payments:
    """A payment API that writes what it does to the ledger."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def charge(self, trace_id: str, key: str) -> None:
        self.ledger.record(kind="charge", trace=trace_id, key=key)

    def refund(self, trace_id: str) -> None:
        self.ledger.record(kind="refund", trace=trace_id)


@asynccontextmanager
async def open_resources() -> AsyncIterator[dict[str, Any]]:
    ledger = Ledger(Path(os.environ["RANVIER_TEST_LEDGER"]))
    yield {"ledger": ledger, "payments": Payments(ledger)}


# --- durable start: two steps, each recording the input it saw ----------------------


def first(value: Any, ctx: StepContext) -> Any:
    ctx.resources["ledger"].record(kind="step", trace=ctx.trace_id, node="first", input=value)
    return {"input": value, "n": 1}


async def second(value: Any, ctx: StepContext) -> Any:
    ctx.resources["ledger"].record(kind="step", trace=ctx.trace_id, node="second", input=value)
    return {**value, "n": 2}


starts = Axon("durable-start", lease=LEASE).then(first).then(second)

# --- a saga: charge, then a step that faults; the hook refunds through a resource -----


def charge(order: Any, ctx: StepContext) -> Any:
    ctx.resources["payments"].charge(ctx.trace_id, ctx.idempotency_key)
    return {**order, "charged": True}


def ship(order: Any, ctx: StepContext) -> Any:
    return Outcome.fault("no_address", "the order has no address")


def refund(context: CompensationContext) -> None:
    context.resources["payments"].refund(context.trace_id)


saga = Axon("saga", lease=LEASE, compensation=refund).then(charge).then(ship)

# --- poison: a step that kills its own process every time it runs ---------------------


def crash(value: Any, ctx: StepContext) -> Any:
    ctx.resources["ledger"].record(kind="crash", trace=ctx.trace_id)
    os.kill(os.getpid(), signal.SIGKILL)


poison = Axon("poison", lease=LEASE, max_attempts=3).then(crash)

app = App(pipelines=[starts, saga, poison], resources=open_resources)
