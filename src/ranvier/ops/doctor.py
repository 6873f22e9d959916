"""`doctor`: can we reach the store, what schema and pool it has, and will it survive a crash."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ranvier.errors import RanvierError
from ranvier.model import now_ms
from ranvier.ops.schema import describe
from ranvier.ops.stores import mask_url, open_with_defaults
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import resolve_store_url


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True, slots=True, kw_only=True)
class Check:
    name: str
    level: Level
    detail: str


async def diagnose(url: str | None) -> list[Check]:
    """Every check in order; a store that cannot be opened yields one failed check."""
    url = resolve_store_url(url)
    started = time.perf_counter()
    try:
        store = await open_with_defaults(url, ensure_schema=False)
    except Exception as exc:  # a driver error an adapter failed to translate, too
        return [_failed("connectivity", exc)]
    try:
        return await _checks(store, url, time.perf_counter() - started)
    finally:
        await store.close()


def _failed(name: str, exc: Exception) -> Check:
    detail = str(exc) if isinstance(exc, RanvierError) else f"{type(exc).__name__}: {exc}"
    return Check(name=name, level=Level.FAIL, detail=detail)


async def _checks(store: PersistenceStore, url: str, open_s: float) -> list[Check]:
    started = time.perf_counter()
    try:
        store_now = await store.now_ms()
        await store.list_traces(limit=1)  # a real read (SQLite's clock is the process's)
    except Exception as exc:
        return [_failed("connectivity", exc)]
    round_trip_ms = (time.perf_counter() - started) * 1000
    checks = [
        Check(
            name="connectivity",
            level=Level.OK,
            detail=f"{store.adapter} at {mask_url(url)}: opened in {open_s * 1000:.1f} ms, "
            f"round trip {round_trip_ms:.2f} ms",
        ),
        _clock(store_now),
    ]
    try:
        info = await describe(store, url)
    except Exception as exc:
        return [*checks, _failed("schema", exc)]
    return [*checks, _schema(info), _pool(info), *_durability(store, info)]


def _clock(store_now: int) -> Check:
    skew = store_now - now_ms()
    level = Level.OK if abs(skew) < 1000 else Level.WARN
    detail = f"store clock is {skew:+d} ms from this machine's"
    if level is Level.WARN:
        detail += (
            "; retention and leases follow the store's clock, interventions compare "
            "client clocks: sync the clocks (NTP)"
        )
    return Check(name="clock", level=level, detail=detail)


def _schema(info: dict[str, Any]) -> Check:
    version, tables = info.get("schema_version"), info.get("tables")
    if info["adapter"] in ("sqlite", "postgres"):
        if not tables:
            return Check(
                name="schema", level=Level.WARN, detail="no tables yet: run `ranvier schema ensure`"
            )
        parts = (
            f", events in {info['partitions']} hash partitions" if info.get("partitions") else ""
        )
        return Check(
            name="schema",
            level=Level.OK,
            detail=f"version {version}, {len(tables)} tables ({tables[0]}, ...){parts}",
        )
    patterns = info.get("key_patterns")
    if patterns:
        return Check(name="schema", level=Level.OK, detail=f"keys {patterns[0]} and siblings")
    return Check(name="schema", level=Level.OK, detail=f"{info['adapter']}: nothing to create")


def _pool(info: dict[str, Any]) -> Check:
    pool = info.get("pool")
    if not pool:
        return Check(name="pool", level=Level.OK, detail="no connection pool settings reported")
    return Check(name="pool", level=Level.OK, detail=", ".join(f"{k}={v}" for k, v in pool.items()))


def _durability(store: PersistenceStore, info: dict[str, Any]) -> list[Check]:
    if not store.capabilities.durable:
        return [_crash_warning(f"the {store.adapter} store keeps nothing after the process ends")]
    persistence = info.get("persistence")
    if store.adapter != "redis" or persistence is None:
        return [Check(name="durability", level=Level.OK, detail="checkpoints survive a crash")]
    return [_redis_durability(persistence)]


def _crash_warning(why: str) -> Check:
    return Check(
        name="durability",
        level=Level.WARN,
        detail=f"{why}: resume after a crash is impossible",
    )


def _redis_durability(persistence: dict[str, Any]) -> Check:
    aof, fsync, save = (persistence.get(k) for k in ("appendonly", "appendfsync", "save"))
    if aof is None:
        return Check(
            name="durability",
            level=Level.WARN,
            detail="cannot read the Redis persistence settings (CONFIG disabled?); check "
            "appendonly / save with your provider",
        )
    if not aof and not save:
        return _crash_warning('Redis persistence is off (appendonly no, save "")')
    if aof and fsync == "always":
        return Check(name="durability", level=Level.OK, detail="AOF with appendfsync always")
    setting = f"appendonly yes, appendfsync {fsync}" if aof else f'RDB only (save "{save}")'
    return Check(
        name="durability",
        level=Level.WARN,
        detail=f"{setting}: a Redis crash loses the checkpoints written since the last "
        "fsync/snapshot; use appendonly yes + appendfsync always for no loss",
    )
