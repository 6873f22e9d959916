"""An order saga with a compensation hook and a payments resource, as in the README.

Run: python examples/order_pipeline.py  (keeps orders.db in the working directory)
Workers: ranvier recover --app order_pipeline:app --store sqlite:///orders.db
"""

import asyncio
from typing import Any

from ranvier import App, Axon, CompensationContext, Outcome, StepContext, open_store

Order = dict[str, Any]


class Payments:
    """Stands in for a payment API client (a pool, an HTTP client...)."""

    async def charge(self, key: str, amount: int) -> str:
        return f"payment-{key}"

    async def refund(self, trace_id: str) -> None:
        print("refund", trace_id)


def validate(order: Order, ctx: StepContext) -> Order | Outcome:
    if order["qty"] <= 0:
        return Outcome.fault("invalid", "quantity must be positive")
    return order


async def charge(order: Order, ctx: StepContext) -> Order:
    # ctx.idempotency_key ("<trace_id>:<step>") is the same when a step in flight at a
    # crash runs again: the payment API applies the charge once.
    payment = await ctx.resources["payments"].charge(ctx.idempotency_key, order["qty"] * 5)
    return {**order, "payment": payment}


def ship(order: Order, ctx: StepContext) -> Order | Outcome:
    if order.get("address") is None:
        return Outcome.fault("no_address", "the order has no address")
    return {**order, "shipped": True}


async def refund(ctx: CompensationContext) -> None:
    # Part of the pipeline, so every worker that resumes the trace compensates the same
    # way; runs at most once per fault, even across crashes and competing workers.
    await ctx.resources["payments"].refund(ctx.trace_id)


pipeline = Axon("orders", version="1", compensation=refund).then(validate).then(charge).then(ship)
app = App(pipelines=[pipeline], resources={"payments": Payments()})
"""What a worker needs: `ranvier recover --app order_pipeline:app` imports it."""


async def main() -> None:
    async with app.open_resources() as resources, await open_store("sqlite:///orders.db") as store:
        ok = await pipeline.run({"qty": 2, "address": "x"}, store=store, resources=resources)
        print(ok.completion.value if ok.completion else None, ok.value)
        bad = await pipeline.run({"qty": 1}, store=store, resources=resources)
        print(bad.completion.value if bad.completion else None, bad.outcome.fault_kind)
        # after a crash, from any process: pipeline.resume(trace_id, store=..., resources=...)
        again = await pipeline.resume(ok.trace_id, store=store, resources=resources)
        print(again.steps_run, again.value == ok.value)  # completed: returned, not re-run


if __name__ == "__main__":
    asyncio.run(main())
