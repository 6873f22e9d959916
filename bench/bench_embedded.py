"""Embedded stores (memory, SQLite) against their raw floors, measured in one run.

Run: `.venv/bin/python -m bench.bench_embedded [--quick] [--compare-writers]`. Figures are
printed, never asserted. Targets (issue 2): memory append p50 <= 5 us; SQLite sequential
append p50 <= 1.5x a bare sqlite3 INSERT+COMMIT with the same pragmas; SQLite >= 50,000
appends/s with 64 concurrent appenders. Floors and stores run interleaved, round by
round, so machine noise hits both alike; each figure is the median of the rounds (five,
after one warm-up round that is not counted).
`--compare-writers` adds the SQLite writer's alternatives (docs/decisions.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import tempfile
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.common import Latency, latency_of, throughput, time_each, time_each_sync
from ranvier import InMemoryPersistenceStore, OutcomeKind, PersistenceEnvelope
from ranvier.stores.base import PersistenceStore
from ranvier.stores.sqlite import SqlitePersistenceStore
from ranvier.stores.sqlite.connection import connect
from ranvier.stores.sqlite.writer import SqliteDatabase

CONCURRENCY = 64
FLOOR_TABLE = """
CREATE TABLE floor (
    id INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, superseded INTEGER NOT NULL,
    step INTEGER NOT NULL, outcome_kind TEXT NOT NULL, node_id TEXT,
    timestamp_ms INTEGER NOT NULL, payload_hash TEXT, payload TEXT, schematic_version TEXT,
    recorded_at_ms INTEGER NOT NULL
)
"""
FLOOR_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS floor_key ON floor (trace_id, superseded, step)"
"""The store's events table and key (sqlite_schema, version 2)."""
FLOOR_INSERT = """
INSERT INTO floor (trace_id, superseded, step, outcome_kind, node_id, timestamp_ms,
                   payload_hash, payload, schematic_version, recorded_at_ms)
VALUES (?, 0, ?, 'Next', ?, ?, ?, ?, NULL, ?)
"""


def payload(step: int) -> dict[str, object]:
    return {"order": "abc-123", "step": step, "items": [1, 2, 3]}


def envelope(trace_id: str, step: int) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit="bench",
        schematic_version="1",
        step=step,
        outcome_kind=OutcomeKind.NEXT,
        node_id=f"node{step % 10}",
        payload=payload(step),
    )


@dataclass
class Figures:
    name: str
    seq: list[Latency] = field(default_factory=list)
    rate: list[float] = field(default_factory=list)
    load: list[Latency] = field(default_factory=list)

    def row(self) -> str:
        cells = f"{self.name:<30}{_seq(self.seq):<36}"
        if self.rate:
            cells += f"{statistics.median(self.rate):>12,.0f} /s"
        if self.load:
            cells += f"{statistics.median(x.p50_us for x in self.load) / 1000:>14.2f} ms"
        return cells

    def p50(self) -> float:
        return statistics.median(x.p50_us for x in self.seq)


def _seq(samples: list[Latency]) -> str:
    p50 = statistics.median(x.p50_us for x in samples)
    p99 = statistics.median(x.p99_us for x in samples)
    return f"p50 {p50:7.1f} us  p99 {p99:8.1f} us"


# --- floors -------------------------------------------------------------------------


def dict_floor(n: int) -> Latency:
    events: dict[int, PersistenceEnvelope] = {}
    prepared = [envelope("floor", i) for i in range(n)]
    return time_each_sync(n, lambda i: events.__setitem__(i, prepared[i]), warmup=0)


class SqliteFloor:
    """A bare INSERT+COMMIT of one event row, with the store writer's pragmas."""

    def __init__(self, path: Path, label: str) -> None:
        self.conn = connect(str(path), synchronous="NORMAL", busy_timeout_ms=5000)
        self.conn.execute(FLOOR_TABLE.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"))
        self.conn.execute(FLOOR_INDEX)
        self.label = label
        self.data = orjson.dumps(payload(0), option=orjson.OPT_SORT_KEYS).decode()
        self.digest = hashlib.sha256(self.data.encode()).hexdigest()
        self.now = time.time_ns() // 1_000_000

    def insert(self, i: int) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        conn.execute(
            FLOOR_INSERT, (self.label, i, "node", self.now, self.digest, self.data, self.now)
        )
        conn.execute("COMMIT")

    def batches(self, total: int) -> float:
        """Rows/s for `total` rows, CONCURRENCY per COMMIT, one per trace: what the store's
        coalesced transactions do with 64 concurrent appenders, without Python around it."""
        conn, rounds = self.conn, total // CONCURRENCY
        rows = [f"{self.label}-batch-{w}" for w in range(CONCURRENCY)]
        start = time.perf_counter()
        for step in range(rounds):
            conn.execute("BEGIN")
            for trace in rows:
                conn.execute(
                    FLOOR_INSERT, (trace, step, "node", self.now, self.digest, self.data, self.now)
                )
            conn.execute("COMMIT")
            if step % 32 == 31:  # as the store does every 2,000 writes (WAL autocheckpoint off)
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        return rounds * CONCURRENCY / (time.perf_counter() - start)

    def close(self) -> None:
        self.conn.close()


# --- stores -------------------------------------------------------------------------


async def sequential(
    store: PersistenceStore, floor: SqliteFloor | None, trace_id: str, n: int, chunks: int
) -> tuple[Latency, Latency | None]:
    """Appends one after another to one trace; envelopes are built before timing.

    With a floor, store and floor alternate in `chunks` blocks, so that the machine's
    noise (other processes, CPU clock) hits both alike; returns (store, floor).
    The warm-up trace sorts first, so the timed rows land at the end of the table's
    B-tree, as the floor's do (mid-tree inserts split pages more, in both).
    """
    warm = [envelope(f"0-warm-{trace_id}", i) for i in range(50)]
    envelopes = [envelope(trace_id, i) for i in range(n)]
    clock = time.perf_counter_ns
    for env in warm:
        await store.append(env)
    if floor is not None:
        for i in range(50):
            floor.insert(-1 - i)
    own: list[int] = []
    bare: list[int] = []
    per = max(1, n // chunks)
    for first in range(0, n, per):
        block = range(first, min(n, first + per))
        if floor is not None:
            for i in block:
                start = clock()
                floor.insert(i)
                bare.append(clock() - start)
        for i in block:
            start = clock()
            await store.append(envelopes[i])
            own.append(clock() - start)
    return latency_of(own), (latency_of(bare) if bare else None)


async def concurrent(store: PersistenceStore, label: str, total: int) -> float:
    per_worker = total // CONCURRENCY
    envelopes = [
        [envelope(f"{label}-{w}", i) for i in range(per_worker)] for w in range(CONCURRENCY)
    ]

    def op(worker: int, i: int) -> Awaitable[None]:
        return store.append(envelopes[worker][i])

    return await throughput(total, CONCURRENCY, op)


async def load_time(store: PersistenceStore, label: str, runs: int) -> Latency:
    trace_id = f"{label}-load-1000"
    await asyncio.gather(*(store.append(envelope(trace_id, i)) for i in range(1000)))
    return await time_each(runs, lambda i: store.load(trace_id), warmup=2)


async def one_round(
    figures: Figures,
    store: PersistenceStore,
    label: str,
    args: argparse.Namespace,
    floor: tuple[Figures, SqliteFloor] | None = None,
) -> None:
    try:
        bare = None if floor is None else floor[1]
        own, base = await sequential(store, bare, f"{label}-seq", args.n, args.chunks)
        figures.seq.append(own)
        if floor is not None and base is not None:
            floor[0].seq.append(base)
        if floor is not None:
            floor[0].rate.append(floor[1].batches(args.total))
        figures.rate.append(await concurrent(store, f"{label}-c", args.total))
        figures.load.append(await load_time(store, label, args.loads))
    finally:
        await store.close()


# --- writer alternatives (bench only: swaps private methods of the writer) ------------


@contextmanager
def writer_mode(mode: str) -> Iterator[None]:
    """eager: the shipped writer. batch: always wait one loop turn to coalesce.
    thread: every transaction on the writer thread (queue hand-off per batch)."""
    saved = SqliteDatabase._may_commit_now, SqliteDatabase._inline_allowed
    if mode in ("batch", "thread"):
        SqliteDatabase._may_commit_now = lambda self, loop, heavy: False  # type: ignore[method-assign]
    if mode == "thread":
        SqliteDatabase._inline_allowed = lambda self, batch: False  # type: ignore[method-assign]
    try:
        yield
    finally:
        SqliteDatabase._may_commit_now, SqliteDatabase._inline_allowed = saved  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> None:
    modes = ["eager", "batch", "thread"] if args.compare_writers else ["eager"]
    floor = Figures("floor: sqlite3 INSERT+COMMIT")
    memory = Figures("memory")
    sqlite = {
        mode: Figures("sqlite" if mode == "eager" else f"sqlite ({mode} writer)") for mode in modes
    }
    with tempfile.TemporaryDirectory(prefix="ranvier-bench-") as tmp:
        for r in range(-args.warmup, args.rounds):
            warm = r < 0  # a warm-up round: run in full, figures dropped
            for mode in modes:
                bare = SqliteFloor(Path(tmp) / "floor.db", f"floor-{r}-{mode}")
                kept = (Figures("floor"), Figures(mode)) if warm else (floor, sqlite[mode])
                try:
                    with writer_mode(mode):
                        store = SqlitePersistenceStore(Path(tmp) / f"{mode}.db")
                        await store.ensure_schema()
                        await one_round(kept[1], store, f"r{r}", args, (kept[0], bare))
                finally:
                    bare.close()
            await one_round(
                Figures("m") if warm else memory, InMemoryPersistenceStore(), f"r{r}", args
            )
    dict_figures = Figures("floor: dict append", seq=[dict_floor(args.n)])
    report(dict_figures, floor, memory, list(sqlite.values()))


def report(dict_figures: Figures, floor: Figures, memory: Figures, sqlite: list[Figures]) -> None:
    print(f"{'':<30}{'sequential append':<36}{'64 concurrent':>15}{'load 1,000 ev':>17}")
    for figures in (dict_figures, floor, memory, *sqlite):
        print(figures.row())
    print()
    print(f"memory append p50 {memory.p50():.1f} us (target <= 5 us)")
    for figures in sqlite:
        print(
            f"{figures.name}: p50 {figures.p50() / floor.p50():.2f}x the sqlite3 floor "
            f"(target <= 1.5x), {statistics.median(figures.rate):,.0f} appends/s at "
            f"{CONCURRENCY} concurrent (target >= 50,000; "
            f"{statistics.median(figures.rate) / statistics.median(floor.rate):.0%} of the "
            f"floor's {CONCURRENCY} rows per COMMIT)"
        )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer samples (smoke run)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="rounds run first and not counted (files, caches)"
    )
    parser.add_argument(
        "--compare-writers", action="store_true", help="also time the batch/thread writers"
    )
    parser.add_argument(
        "--chunks", type=int, default=20, help="blocks in which SQLite and its floor alternate"
    )
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    args.n, args.total, args.loads = 10_000 // scale, 64_000 // scale, 50 // scale
    return args


if __name__ == "__main__":
    asyncio.run(main(parse()))
