"""DBOS's cell of bench.peers: one `@DBOS.workflow()` calling a `@DBOS.step()` 10 times
(each step's output checkpointed), its system database on a new SQLite file or a new
PostgreSQL database; the sync workflow one run after another, the async one in flight."""

from __future__ import annotations

import logging
import tempfile
from typing import Any

from dbos import DBOS

from bench.bench_runtime import ORDER
from bench.peers import STEPS, Plan, fresh_database, in_flight, one_after_another

Order = dict[str, Any]


@DBOS.step()
def step(order: Order) -> Order:
    return order


@DBOS.workflow()
def pipeline(order: Order) -> Order:
    for _ in range(STEPS):
        order = step(order)
    return order


@DBOS.step()
async def astep(order: Order) -> Order:
    return order


@DBOS.workflow()
async def apipeline(order: Order) -> Order:
    for _ in range(STEPS):
        order = await astep(order)
    return order


async def on(url: str, plan: Plan) -> tuple[float, float]:
    DBOS(config={"name": "ranvier-peers", "system_database_url": url, "log_level": "WARNING"})
    DBOS.launch()
    try:

        async def run_sync() -> object:
            return pipeline(ORDER)

        async def run_async() -> object:
            return await apipeline(ORDER)

        return await one_after_another(run_sync, plan), await in_flight(run_async, plan)
    finally:
        DBOS.destroy()


async def measure(store: str, plan: Plan) -> tuple[str, float, float]:
    logging.getLogger("dbos").setLevel(logging.WARNING)
    api = "`@DBOS.workflow()`, `@DBOS.step()`"
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            return api, *await on(f"sqlite:///{tmp}/dbos.sqlite", plan)
    async with fresh_database() as url:
        return api, *await on(url, plan)
