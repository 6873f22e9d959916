"""ranvier beside its peers: the same 10-step, checkpoint-per-step workload through
ranvier, LangGraph's checkpointers and DBOS, on SQLite and PostgreSQL (ranvier on Redis too).

Run: `make peers` (installs the `bench` extra), or `python -m bench.peers [--quick] [--write]`.
Each library on each store runs in its own process, one after another, and measures:
- time per checkpoint: the median of runs one after another, divided by 10;
- checkpoints per second with 64 runs in flight (median of rounds after a warm-up round).
`--write` puts the table into docs/performance.md between `<!-- peers:start -->` and
`<!-- peers:end -->`. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from datetime import date
from importlib import import_module, metadata

from bench.report import PERFORMANCE, replace_section

STEPS = 10
CONCURRENCY = 64
POSTGRES_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
STORES = {"sqlite": "SQLite", "postgres": "PostgreSQL", "redis": "Redis"}
LIBRARIES = {"ranvier": "ranvier", "langgraph": "LangGraph", "dbos": "DBOS"}
CELLS = [
    ("ranvier", "sqlite"),
    ("langgraph", "sqlite"),
    ("dbos", "sqlite"),
    ("ranvier", "postgres"),
    ("langgraph", "postgres"),
    ("dbos", "postgres"),
    ("ranvier", "redis"),
]
PACKAGES = [
    "ranvier",
    "langgraph",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "psycopg",
    "dbos",
]
CELL_TIMEOUT_S = 600
Run = Callable[[], Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Plan:
    """How many runs: one after another (after a warm-up), and per round in flight."""

    runs: int = 300
    warmup: int = 50
    round_runs: int = 4 * CONCURRENCY
    rounds: int = 3

    @classmethod
    def pick(cls, quick: bool) -> Plan:
        return cls(runs=30, warmup=10, round_runs=CONCURRENCY, rounds=1) if quick else cls()


@dataclass(frozen=True, slots=True)
class Cell:
    """One library on one store: its figures, or why it did not run."""

    library: str
    store: str
    api: str = ""
    us_per_checkpoint: float | None = None
    per_second: float | None = None
    error: str = ""


async def one_after_another(run: Run, plan: Plan) -> float:
    """Microseconds per checkpoint: the median run, runs one after another, divided by 10."""
    for _ in range(plan.warmup):
        await run()
    samples = []
    for _ in range(plan.runs):
        start = time.perf_counter()
        await run()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) / STEPS * 1e6


async def in_flight(run: Run, plan: Plan) -> float:
    """Checkpoints per second, 64 runs at once: a warm-up round (it opens the connections
    the peers' pools hold), then the median of `plan.rounds` rounds."""

    async def worker(n: int) -> None:
        for _ in range(n):
            await run()

    async def one_round(runs: int) -> float:
        each = max(1, runs // CONCURRENCY)
        start = time.perf_counter()
        await asyncio.gather(*(worker(each) for _ in range(CONCURRENCY)))
        return each * CONCURRENCY * STEPS / (time.perf_counter() - start)

    await one_round(CONCURRENCY)
    return statistics.median([await one_round(plan.round_runs) for _ in range(plan.rounds)])


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A new PostgreSQL database for one cell, dropped afterwards; yields its URL."""
    import asyncpg

    name = f"ranvier_peers_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def run_cell(library: str, store: str, plan: Plan) -> Cell:
    """Measure one cell in this process (`bench.peers_<library>.measure`)."""
    module = import_module(f"bench.peers_{library}")
    api, us, per_second = asyncio.run(module.measure(store, plan))
    return Cell(library, store, api, us, per_second)


def spawn_cell(library: str, store: str, quick: bool) -> Cell:
    """Measure one cell in a child process: no peer's threads or imports touch another's."""
    argv = [sys.executable, "-m", "bench.peers", "--cell", f"{library}:{store}"]
    try:
        done = subprocess.run(
            [*argv, *(["--quick"] if quick else [])],
            capture_output=True,
            text=True,
            timeout=CELL_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Cell(library, store, error=f"timed out after {CELL_TIMEOUT_S} s")
    lines = done.stdout.strip().splitlines()
    if done.returncode or not lines:
        last = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        return Cell(library, store, error=last[:160])
    return Cell(**json.loads(lines[-1]))


def _us(value: float) -> str:
    return f"{value:,.0f} µs" if value >= 100 else f"{value:,.1f} µs"


def table(cells: list[Cell]) -> str:
    """The figures as a markdown table; `(Nx)` is how many times ranvier on the same store
    is faster."""
    ours = {c.store: c for c in cells if c.library == "ranvier" and not c.error}
    lines = [
        "| store | library | API | per checkpoint, runs one after another "
        f"| checkpoints/s, {CONCURRENCY} runs in flight |",
        "|---|---|---|---:|---:|",
    ]
    for c in cells:
        store, name = STORES.get(c.store, c.store), LIBRARIES.get(c.library, c.library)
        if c.error:
            lines.append(f"| {store} | {name} | | did not run: {c.error} | |")
            continue
        assert c.us_per_checkpoint is not None and c.per_second is not None
        per, rate = _us(c.us_per_checkpoint), f"{c.per_second:,.0f}"
        base = ours.get(c.store)
        if c.library != "ranvier" and base is not None:
            assert base.us_per_checkpoint is not None and base.per_second is not None
            per += f" ({c.us_per_checkpoint / base.us_per_checkpoint:,.1f}x)"
            rate += f" ({base.per_second / c.per_second:,.1f}x)"
        lines.append(f"| {store} | {name} | {c.api} | {per} | {rate} |")
    return "\n".join(lines) + "\n"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


async def _servers() -> str:
    parts = [f"SQLite {sqlite3.sqlite_version}"]
    try:
        import asyncpg

        conn = await asyncpg.connect(POSTGRES_URL)
        parts.append(f"PostgreSQL {await conn.fetchval('SHOW server_version')}")
        await conn.close()
    except Exception:  # a version line only: the cells report their own failures
        parts.append("PostgreSQL unreachable")
    try:
        import redis.asyncio as redis

        client = redis.Redis.from_url(REDIS_URL)
        parts.append(f"Redis {(await client.info('server'))['redis_version']}")
        await client.aclose()
    except Exception:
        parts.append("Redis unreachable")
    return ", ".join(parts)


def _memory_gib() -> float:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def report(cells: list[Cell], plan: Plan, servers: str, command: str) -> str:
    """The section for docs/performance.md: how, where and with what, then the table."""
    versions = ", ".join(f"{p} {_version(p)}" for p in PACKAGES)
    return f"""\
Measured {date.today().isoformat()} by `{command}` on {os.cpu_count()} cores and \
{_memory_gib():.0f} GiB RAM (a shared machine: expect ±30% between runs), \
Python {platform.python_version()}, {servers}; {versions}.

- **The workload**, the same for every library: {STEPS} steps, each returns its input (a \
small order dict) and is checkpointed before the next starts; a new run (thread, workflow) \
each time; {plan.runs} runs one after another after {plan.warmup} to warm up, then \
{CONCURRENCY} in flight ({plan.rounds} rounds of {plan.round_runs} runs after one warm-up \
round). Each cell runs in its own process on a new SQLite file or PostgreSQL database \
(ranvier: a table or key prefix), dropped afterwards.
- **ranvier**: an `Axon` of {STEPS} steps, as in `bench_runtime`.
- **LangGraph**: a `StateGraph` of {STEPS} nodes in a line with `durability="sync"` (a \
checkpoint per super-step, written before the next node runs); the sync saver one run after \
another, the async one in flight (on PostgreSQL with a pool of 5-20 connections, as ranvier's).
- **DBOS**: one `@DBOS.workflow()` calling a `@DBOS.step()` {STEPS} times; the sync workflow \
one run after another, the async one in flight.
- **As each ships**: ranvier's SQLite store runs WAL with `synchronous=NORMAL`, LangGraph's \
WAL with SQLite's default `FULL`, DBOS's a rollback journal with `FULL`. On Redis only \
ranvier runs: DBOS has no Redis backend, and LangGraph's Redis checkpointer needs the \
RedisJSON and RediSearch modules.
- `(Nx)`: ranvier on the same store is N times faster.

{table(cells)}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a few runs only (a smoke test)")
    parser.add_argument("--write", action="store_true", help="replace the section in the docs")
    parser.add_argument("--only", default="", help="comma-separated libraries, e.g. ranvier,dbos")
    parser.add_argument("--cell", help=argparse.SUPPRESS)  # library:store, in a child process
    args = parser.parse_args(argv)
    if args.cell:
        library, store = args.cell.split(":")
        print(json.dumps(asdict(run_cell(library, store, Plan.pick(args.quick)))))
        return 0
    wanted = [w for w in args.only.split(",") if w] or list(LIBRARIES)
    cells = []
    for library, store in CELLS:
        if library in wanted:
            print(f"{LIBRARIES[library]} on {STORES[store]}...", file=sys.stderr, flush=True)
            cells.append(spawn_cell(library, store, args.quick))
    command = " ".join(["python -m bench.peers", *(sys.argv[1:] if argv is None else argv)])
    text = report(cells, Plan.pick(args.quick), asyncio.run(_servers()), command)
    print(text)
    if args.write:
        replace_section("peers", text, PERFORMANCE)
        print(f"written to {PERFORMANCE}", file=sys.stderr)
    return 1 if any(c.error for c in cells) else 0


if __name__ == "__main__":
    sys.exit(main())
