"""LangGraph's cell of bench.peers: a `StateGraph` of 10 nodes in a line, a checkpoint per
super-step written before the next (`durability="sync"`), a new thread per run; the sync
saver one run after another, the async saver with 64 runs in flight."""

from __future__ import annotations

import sqlite3
import tempfile
import uuid
from typing import Any, TypedDict

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.postgres import PostgresSaver
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from bench.bench_runtime import ORDER
from bench.peers import STEPS, Plan, fresh_database, in_flight, one_after_another


class Order(TypedDict):
    order: str
    amount: int
    items: list[int]
    ok: bool


def step(state: Order) -> Order:
    return state


async def astep(state: Order) -> Order:
    return state


def graph(node: Any, saver: BaseCheckpointSaver[Any]) -> CompiledStateGraph[Any]:
    builder = StateGraph(Order)
    previous = START
    for i in range(STEPS):
        builder.add_node(f"s{i}", node)
        builder.add_edge(previous, f"s{i}")
        previous = f"s{i}"
    builder.add_edge(previous, END)
    return builder.compile(checkpointer=saver)


def thread() -> Any:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


async def both(sync: BaseCheckpointSaver[Any], aio: BaseCheckpointSaver[Any], plan: Plan) -> Any:
    one, many = graph(step, sync), graph(astep, aio)

    async def run_sync() -> object:
        return one.invoke(ORDER, thread(), durability="sync")

    async def run_async() -> object:
        return await many.ainvoke(ORDER, thread(), durability="sync")

    return await one_after_another(run_sync, plan), await in_flight(run_async, plan)


async def measure(store: str, plan: Plan) -> tuple[str, float, float]:
    if store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/langgraph.db"
            conn = sqlite3.connect(path, check_same_thread=False)
            try:
                sync = SqliteSaver(conn)
                sync.setup()
                async with AsyncSqliteSaver.from_conn_string(path) as aio:
                    per, rate = await both(sync, aio, plan)
            finally:
                conn.close()
        return "`SqliteSaver`, `AsyncSqliteSaver`", per, rate
    async with fresh_database() as url:
        with PostgresSaver.from_conn_string(url) as sync:
            sync.setup()
            pool = AsyncConnectionPool(
                url,
                min_size=5,
                max_size=20,
                open=False,
                kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
            )
            await pool.open()
            try:
                per, rate = await both(sync, AsyncPostgresSaver(pool), plan)  # type: ignore[arg-type]
            finally:
                await pool.close()
    return "`PostgresSaver`, `AsyncPostgresSaver`", per, rate
