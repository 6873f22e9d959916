"""`doctor`: can we reach the store, what schema and pool it has, and will it survive a crash."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ranvier.errors import RanvierError, SchemaMissing
from ranvier.model import StoreDescription, now_ms
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
    """Every check in order; a store that cannot be opened yields one failed check.

    Read-only: opening creates nothing, so a mistyped URL or prefix shows as a missing
    schema, and an empty store is reported as such, not as a connectivity failure.
    """
    url = resolve_store_url(url)
    started = time.perf_counter()
    try:
        store = await open_with_defaults(url, ensure_schema=False)
    except SchemaMissing as exc:
        return [_failed("schema", exc)]
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
        described = await store.describe()
    except SchemaMissing as exc:
        return [_failed("schema", exc)]
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
        _schema(described),
    ]
    if store.adapter == "postgres":
        checks.append(_postgres_pool(described.settings))
    return [*checks, *_durability(store, described)]


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


def _schema(described: StoreDescription) -> Check:
    version, latest = described.schema_version, described.latest_schema_version
    if latest is None:
        return Check(name="schema", level=Level.OK, detail=f"{described.adapter}: no schema")
    if version is None:
        return Check(
            name="schema",
            level=Level.FAIL,
            detail=f"no ranvier schema at {described.location}: run `ranvier schema ensure` "
            "(or check the URL and the table/key prefix)",
        )
    objects = described.objects
    shown = f", {len(objects)} tables or key shapes ({objects[0]}, ...)" if objects else ""
    if version < latest:
        return Check(
            name="schema",
            level=Level.WARN,
            detail=f"version {version}, this ranvier writes {latest}: run "
            "`ranvier schema ensure` to migrate",
        )
    return Check(name="schema", level=Level.OK, detail=f"version {version}{shown}")


def _postgres_pool(settings: Mapping[str, Any]) -> Check:
    pool_max, server_max = settings.get("pool_max"), settings.get("max_connections")
    detail = f"pool {settings.get('pool_min')}..{pool_max} connections per process"
    if pool_max is None or server_max is None:
        return Check(name="pool", level=Level.OK, detail=detail)
    room = int(server_max) - int(pool_max)
    detail += f", server max_connections {server_max}"
    if room < 0:
        return Check(
            name="pool",
            level=Level.WARN,
            detail=f"{detail}: one process can ask for more than the server allows; lower "
            "max_connections= in the URL or raise the server's",
        )
    return Check(
        name="pool",
        level=Level.OK,
        detail=f"{detail}: room for {room // max(int(pool_max), 1) + 1} such processes",
    )


def _durability(store: PersistenceStore, described: StoreDescription) -> list[Check]:
    if not store.capabilities.durable:
        return [_crash_warning(f"the {store.adapter} store keeps nothing after the process ends")]
    settings = described.settings
    if store.adapter == "postgres":
        return [_postgres_durability(settings)]
    if store.adapter == "sqlite":
        return [_sqlite_durability(settings)]
    if store.adapter == "redis":
        return _redis_durability(settings)
    return [Check(name="durability", level=Level.OK, detail="checkpoints survive a crash")]


def _crash_warning(why: str) -> Check:
    return Check(
        name="durability",
        level=Level.WARN,
        detail=f"{why}: resume after a crash is impossible",
    )


def _postgres_durability(settings: Mapping[str, Any]) -> Check:
    commit = str(settings.get("synchronous_commit"))
    if commit == "off":
        return Check(
            name="durability",
            level=Level.WARN,
            detail="synchronous_commit=off: a server crash can lose commits already "
            "acknowledged (checkpoints whose steps then run again); set it to on",
        )
    return Check(name="durability", level=Level.OK, detail=f"synchronous_commit={commit}")


def _sqlite_durability(settings: Mapping[str, Any]) -> Check:
    journal, sync = settings.get("journal_mode"), str(settings.get("synchronous")).upper()
    if journal not in (None, "wal"):
        return Check(
            name="durability",
            level=Level.FAIL,
            detail=f"journal_mode={journal}: the store needs WAL (reopen it with ranvier)",
        )
    if sync in ("OFF", "0"):
        return Check(
            name="durability",
            level=Level.WARN,
            detail="synchronous=OFF: an OS crash or power loss can corrupt the file; use "
            "NORMAL (survives a killed process) or FULL (also a power loss)",
        )
    if sync in ("NORMAL", "1"):
        return Check(
            name="durability",
            level=Level.OK,
            detail="synchronous=NORMAL: acknowledged checkpoints survive a killed process; "
            "a power loss can lose the last ones (synchronous=FULL covers it)",
        )
    return Check(name="durability", level=Level.OK, detail=f"synchronous={sync}")


def _redis_durability(settings: Mapping[str, Any]) -> list[Check]:
    aof, fsync, save = (settings.get(k) for k in ("appendonly", "appendfsync", "save"))
    checks: list[Check] = []
    if aof is None:
        checks.append(
            Check(
                name="durability",
                level=Level.WARN,
                detail="cannot read the Redis persistence settings (CONFIG disabled?); check "
                "appendonly / appendfsync with your provider",
            )
        )
    elif aof in (False, "no") and not save:
        checks.append(_crash_warning('Redis persistence is off (appendonly no, save "")'))
    elif aof in (True, "yes") and fsync == "always":
        checks.append(
            Check(name="durability", level=Level.OK, detail="AOF with appendfsync always")
        )
    else:
        setting = f"appendonly yes, appendfsync {fsync}" if aof in (True, "yes") else "RDB only"
        checks.append(
            Check(
                name="durability",
                level=Level.WARN,
                detail=f"{setting}: a Redis crash loses the checkpoints written since the "
                "last fsync/snapshot; use appendonly yes + appendfsync always for no loss",
            )
        )
    replicas = settings.get("connected_replicas")
    if replicas:
        checks.append(
            Check(
                name="replication",
                level=Level.WARN,
                detail=f"{replicas} replica(s): replication is asynchronous, so a failover "
                "can lose acknowledged checkpoints (not covered by the guarantees)",
            )
        )
    policy = settings.get("maxmemory-policy")
    if policy not in (None, "noeviction"):
        checks.append(
            Check(
                name="eviction",
                level=Level.WARN,
                detail=f"maxmemory-policy {policy}: Redis may evict trace keys under memory "
                "pressure; use noeviction (writes then fail loudly instead)",
            )
        )
    return checks
