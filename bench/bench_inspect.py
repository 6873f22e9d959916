"""The inspector's pages on a store of 1,000,000 traces, SQLite and PostgreSQL.

Usage: python -m bench.bench_inspect [--traces 1000000] [--only sqlite,postgres]
                                     [--rounds 20] [--keep]

A hundred template traces (every status, three checkpoints each, faults with
tracebacks, failed compensations, poisoned runs, two versions) are written through the
store (`import_trace`); SQL then copies them into `--traces` traces in a few seconds
(SQLite: one INSERT ... SELECT per table over a recursive series; PostgreSQL: over
generate_series), copying every column the schema has, so the rows are the store's own.
Each page is then requested through the ASGI app in this process (routing, the store's
queries, rendering), `--rounds` times after a warm-up; figures are printed, nothing is
asserted. The SQLite file lives in a temporary directory and the PostgreSQL tables under
the prefix `bench_inspect`: both are removed at the end unless `--keep` (a later run with
`--keep` reuses them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from ranvier import open_store, rules
from ranvier.inspect import InspectorSettings, create_app
from ranvier.model import CompletionState, OutcomeKind, PersistedTrace, PersistenceEnvelope
from ranvier.stores.base import PersistenceStore

TEMPLATES = 100
PG_URL = os.environ.get("RANVIER_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
PG_PREFIX = "bench_inspect"
SQLITE_TABLES = ("state", "events", "interventions")
NODES = ("validate", "charge", "ship")
TRACEBACK = 'Traceback (most recent call last):\n  File "app.py", line 12, in ship\n' * 3


def _event(
    trace_id: str, version: str, step: int, at_ms: int, **fields: Any
) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit="orders",
        schematic_version=version,
        step=step,
        timestamp_ms=at_ms,
        **fields,
    )


def template(n: int, now: int) -> PersistedTrace:
    """Template `n`: mostly succeeded, some faulted (half of them with a failed hook),
    compensated, cancelled, interrupted (some poisoned); one in ten of version 1."""
    kind = n % 20
    completion = {
        0: CompletionState.FAULT, 1: CompletionState.FAULT, 2: CompletionState.COMPENSATED,
        3: CompletionState.CANCELLED, 4: None, 5: None, 6: None,
    }.get(kind, CompletionState.SUCCESS)  # fmt: skip
    trace_id, version = f"tpl-{n:02d}", "1" if n % 10 == 9 else "2"
    order = {
        "order": f"o-{n}",
        "qty": n % 7 + 1,
        "address": f"{n} Main St",
        "items": list(range(8)),
    }
    steps = 3 if completion is not None else 2
    events = [
        _event(
            trace_id,
            version,
            i,
            now - 60_000 + i * 150,
            node_id=NODES[i],
            payload={**order, "step": i},
        )
        for i in range(steps)
    ]
    if completion in (CompletionState.FAULT, CompletionState.COMPENSATED):
        fault = {"kind": "RuntimeError", "message": "carrier down", "traceback": TRACEBACK}
        events[2] = _event(
            trace_id,
            version,
            2,
            now - 59_000,
            node_id="ship",
            outcome_kind=OutcomeKind.FAULT,
            payload=fault,
        )
    if kind == 0:  # the marker a failed compensation hook leaves
        marker = {"kind": "compensation_failed", "message": "refund service down"}
        events.append(
            _event(
                trace_id, version, 3, now - 58_000, outcome_kind=OutcomeKind.FAULT, payload=marker
            )
        )
    return PersistedTrace(
        trace_id=trace_id,
        circuit="orders",
        schematic_version=version,
        events=tuple(events),
        completion=completion,
        created_at_ms=now - 61_000,
        updated_at_ms=now - 58_000,
        completed_at_ms=None if completion is None else now - 58_000,
        input=order,
        attempts=6 if kind == 5 else 1,
    )


async def write_templates(store: PersistenceStore) -> None:
    now = await store.now_ms()
    for n in range(TEMPLATES):
        await store.import_trace(template(n, now))


def fill_sqlite(path: Path, copies: int) -> None:
    """Copy every template row `copies` times under ids t0000001-00 ... (key order)."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("BEGIN")
        for name in SQLITE_TABLES:
            table = f"ranvier_persistence_{name}"
            info = conn.execute(f"PRAGMA table_info({table})").fetchall()
            keys = [row for row in info if row[5]]
            # an INTEGER PRIMARY KEY is the rowid: SQLite numbers the copies itself
            rowid = keys[0][1] if len(keys) == 1 and keys[0][2].upper() == "INTEGER" else None
            columns = [row[1] for row in info if row[1] != rowid]
            picked = ", ".join(
                "printf('t%07d-%s', n.i, substr(x.trace_id, 5))" if c == "trace_id" else f"x.{c}"
                for c in columns
            )
            conn.execute(
                f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} FROM n CROSS JOIN "
                f"(SELECT * FROM {table} WHERE trace_id LIKE 'tpl-%' ORDER BY trace_id) x",
                (copies,),
            )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


async def fill_postgres(url: str, prefix: str, copies: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET synchronous_commit = off")
        for name in SQLITE_TABLES:
            table = f"{prefix}_{name}"
            columns = [
                r[0]
                for r in await conn.fetch(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = $1 "
                    "AND is_generated = 'NEVER' AND is_identity = 'NO' ORDER BY ordinal_position",
                    table,
                )
            ]
            picked = ", ".join(
                "format('t%s-%s', lpad(g.i::text, 7, '0'), substr(x.trace_id, 5))"
                if c == "trace_id"
                else f"x.{c}"
                for c in columns
            )
            await conn.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) SELECT {picked} "
                f"FROM generate_series(1, $1::int) g(i) CROSS JOIN "
                f"(SELECT * FROM {table} WHERE trace_id LIKE 'tpl-%') x",
                copies,
            )
            await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()


async def drop_postgres(url: str, prefix: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE $1", prefix + "\\_%"
        )
        for (table,) in tables:
            await conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    finally:
        await conn.close()


async def total(store: PersistenceStore) -> int:
    return sum((await store.count_traces_by_status()).values())


@asynccontextmanager
async def client(
    store: PersistenceStore, url: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    web = create_app(InspectorSettings(store_url=url, **settings), store=store)
    async with web.router.lifespan_context(web):
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080") as c:
            yield c


def figures(samples: list[float]) -> str:
    ordered = sorted(samples)
    return (
        f"p50 {statistics.median(ordered):7.1f} ms   max {ordered[-1]:7.1f} ms   "
        f"min {ordered[0]:7.1f} ms   (n={len(ordered)})"
    )


async def timed(rounds: int, op: Any) -> list[float]:
    for _ in range(3):
        await op()
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        await op()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


async def measure(store: PersistenceStore, url: str, traces: int, rounds: int) -> None:
    middle = f"t{traces // TEMPLATES // 2:07d}"
    pages = {
        "list, first page": "/",
        "list, a page in the middle": f"/?cursor={rules.encode_cursor(middle)}",
        "list, status=interrupted": "/?status=interrupted",
        "list, status=faulted (marks failed hooks)": "/?status=faulted",
        "list, circuit=orders": "/?circuit=orders",
        "list, poisoned": "/?poisoned=1",
        "list, version=1 (read page by page)": "/?version=1",
        "list, compensation failed (read page by page)": "/?compensation_failed=1",
        "a trace's timeline": f"/trace?id={middle}-00",
    }

    async def one_page() -> None:
        await store.list_traces(limit=50)

    print(
        f"  {'store: count_traces_by_status()':50s}",
        figures(await timed(rounds, store.count_traces_by_status)),
    )
    print(f"  {'store: list_traces(limit=50)':50s}", figures(await timed(rounds, one_page)))
    # the worst case: no counts cached, and the page waits for the whole count
    async with client(store, url, counts_ttl_seconds=0, counts_wait_seconds=60) as c:

        async def cold() -> None:
            assert (await c.get("/")).status_code == 200

        print(
            f"  {'list, first page, waiting for a fresh count':50s}",
            figures(await timed(rounds, cold)),
        )
    # as served: counts reused for 5 s, counted again in the background
    async with client(store, url) as c:
        for label, path in pages.items():

            async def get(path: str = path) -> None:
                response = await c.get(path)
                assert response.status_code == 200, (
                    path,
                    response.status_code,
                    response.text[:500],
                )

            print(f"  {label:50s}", figures(await timed(rounds, get)), flush=True)


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def bench_sqlite(traces: int, rounds: int, keep: bool) -> None:
    folder = Path(tempfile.gettempdir()) / "ranvier-bench-inspect"
    folder.mkdir(exist_ok=True)
    path = folder / f"traces-{traces}.db"
    url = f"sqlite:///{path}"
    store = await open_store(url)
    try:
        if await total(store) != traces:
            await store.close()
            await asyncio.to_thread(remove_sqlite, path)
            store = await open_store(url)
            started = time.perf_counter()
            await write_templates(store)
            await asyncio.to_thread(fill_sqlite, path, traces // TEMPLATES - 1)
            print(
                f"  filled {await total(store):,} traces in {time.perf_counter() - started:.1f} s"
            )
        print(f"  {await total(store):,} traces in {path} ({path.stat().st_size / 2**20:.0f} MiB)")
        await measure(store, url, traces, rounds)
    finally:
        await store.close()
        if not keep:
            await asyncio.to_thread(remove_sqlite, path)


async def bench_postgres(traces: int, rounds: int, keep: bool) -> None:
    urls = [PG_URL]
    if "jit=" not in PG_URL:
        # the server's JIT compiles the list query's generic plan on every call (its cost
        # estimate passes jit_above_cost): the same pages again with JIT off for the session
        urls.append(PG_URL + ("&" if "?" in PG_URL else "?") + "jit=off")
    try:
        for url in urls:
            store = await open_store(url, table_prefix=PG_PREFIX)
            try:
                if await total(store) != traces:
                    await fill_postgres_store(store, traces)
                print(f"  {await total(store):,} traces under prefix {PG_PREFIX} at {url}")
                await measure(store, url, traces, rounds)
            finally:
                await store.close()
    finally:
        if not keep:
            await drop_postgres(PG_URL, PG_PREFIX)


async def fill_postgres_store(store: PersistenceStore, traces: int) -> None:
    await drop_postgres(PG_URL, PG_PREFIX)
    await store.ensure_schema()
    started = time.perf_counter()
    await write_templates(store)
    await fill_postgres(PG_URL, PG_PREFIX, traces // TEMPLATES - 1)
    print(f"  filled {await total(store):,} traces in {time.perf_counter() - started:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=1_000_000, help="a multiple of 100")
    parser.add_argument("--only", default="sqlite,postgres")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="keep the filled stores for a rerun")
    args = parser.parse_args()
    if args.traces % TEMPLATES or args.traces < TEMPLATES:
        parser.error(f"--traces must be a multiple of {TEMPLATES}")
    for name in args.only.split(","):
        print(f"--- {name.strip()}: the inspector on {args.traces:,} traces ---", flush=True)
        run = bench_sqlite if name.strip() == "sqlite" else bench_postgres
        asyncio.run(run(args.traces, args.rounds, args.keep))


if __name__ == "__main__":
    main()
