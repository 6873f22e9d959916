"""ranvier's cell of bench.peers: `bench_runtime`'s pipeline and stores (a fresh file, table
prefix or key prefix per run, dropped afterwards)."""

from __future__ import annotations

from bench.bench_runtime import ORDER, opened, pipeline
from bench.peers import STEPS, Plan, in_flight, one_after_another


async def measure(store: str, plan: Plan) -> tuple[str, float, float]:
    axon = pipeline(STEPS)
    async with opened(store) as durable:

        async def run() -> object:
            return await axon.run(ORDER, store=durable)

        return "`Axon`", await one_after_another(run, plan), await in_flight(run, plan)
