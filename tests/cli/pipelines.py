"""Pipelines the CLI tests name with --app (tests.cli.pipelines:orders, :pipelines)."""

from __future__ import annotations

from typing import Any

from ranvier import App, CompensationContext, RetryPolicy
from ranvier.runtime import Axon, StepContext

ONCE = RetryPolicy(attempts=1)


async def validate(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {**order, "valid": True}


async def charge(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {**order, "charged": order.get("amount", 0)}


async def ship(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    return {**order, "shipped": True}


orders = Axon("cli-orders", version="1.0").then(validate).then(charge).then(ship)
refunds = Axon("cli-refunds", version="1.0").then(validate)
pipelines = [orders, refunds]
not_an_axon = {"name": "cli-orders"}


async def pack(order: dict[str, Any], ctx: StepContext) -> dict[str, Any]:
    if not ctx.resources.get("fixed"):
        return {**order, "box": order["size"]}  # KeyError until fixed
    return {**order, "box": "M"}


def refund(context: CompensationContext) -> None:
    raise RuntimeError("refund service down")


faulty = Axon("cli-faulty", version="1.0").then(validate).then(pack).then(ship)
failing_hook = (
    Axon("cli-hook", version="1.0", compensation=refund, compensation_retry=ONCE)
    .then(validate)
    .then(pack)
)
broken = App(pipelines=[faulty, failing_hook])
fixed = App(pipelines=[faulty, failing_hook], resources={"fixed": True})

REFUNDED: list[str] = []


def refund_ok(context: CompensationContext) -> None:
    REFUNDED.append(context.trace_id)


hook_fixed = App(
    pipelines=[Axon("cli-hook", version="1.0", compensation=refund_ok).then(validate).then(pack)]
)
