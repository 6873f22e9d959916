"""A three-step order pipeline with a compensation hook, as in the README.

Run: python examples/order_pipeline.py  (keeps orders.db in the working directory)
"""

import asyncio

from ranvier import Axon, CompensationContext, Outcome, StepContext, open_store


def validate(order: dict, ctx: StepContext) -> dict | Outcome:
    if order["qty"] <= 0:
        return Outcome.fault("invalid", "quantity must be positive")
    return order


async def charge(order: dict, ctx: StepContext) -> dict:
    # Pass ctx.idempotency_key ("<trace_id>:<step>") to the payment API: a step that was
    # in flight when its process died runs again with the same key.
    return {**order, "payment_key": ctx.idempotency_key}


async def refund(ctx: CompensationContext) -> None:
    # Runs at most once per fault, even across crashes and competing workers.
    print("refund", ctx.trace_id, "after", ctx.fault_kind)


pipeline = Axon("orders", version="1").then(validate).then(charge)


async def main() -> None:
    async with await open_store("sqlite:///orders.db") as store:
        ok = await pipeline.run({"qty": 2}, store=store, compensation=refund)
        print(ok.completion.value, ok.value)
        bad = await pipeline.run({"qty": 0}, store=store, compensation=refund)
        print(bad.completion.value, bad.outcome.fault_kind)
        # After a crash, from any process: await pipeline.resume(trace_id, store=store)
        again = await pipeline.resume(ok.trace_id, store=store)  # completed: not re-run
        print(again.completion.value, again.steps_run, again.value == ok.value)


asyncio.run(main())
