"""Pipelines the CLI tests name with --app (tests.cli.pipelines:orders, :pipelines)."""

from __future__ import annotations

from typing import Any

from ranvier.runtime import Axon, StepContext


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
