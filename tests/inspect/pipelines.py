"""The pipeline the inspector tests run and name with --app (tests.inspect.pipelines:app)."""

from __future__ import annotations

import asyncio
from typing import Any

from ranvier import App, CompensationContext, RetryPolicy
from ranvier.runtime import Axon, StepContext

REFUND_FAILS: set[str] = set()
"""Trace ids whose refund hook raises (a test removes one to let a retry succeed)."""
REFUNDED: list[str] = []


def validate(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {**order, "valid": True}


async def charge(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if order.get("slow"):
        await asyncio.sleep(30)
    return {**order, "payment": f"pay-{ctx.idempotency_key}"}


def ship(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if order.get("address") is None:
        raise RuntimeError("the order has no address")
    return {**order, "shipped": True}


def refund(context: CompensationContext) -> None:
    if context.trace_id in REFUND_FAILS:
        raise ConnectionError("refund service down")
    REFUNDED.append(context.trace_id)


orders = (
    Axon("orders", version="2", compensation=refund, compensation_retry=RetryPolicy(attempts=1))
    .then(validate)
    .then(charge)
    .then(ship)
)
app = App(pipelines=[orders])
