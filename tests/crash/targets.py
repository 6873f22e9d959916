"""The durable stores the crash tests run against: every adapter module that exists.

The parameter list is built from what is installed (`find_spec`), so a new adapter is
crash-tested as soon as it lands; a server that is down fails loudly, never skips.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranvier import open_store
from tests.servers import PG_START, POSTGRES_URL, REDIS_START, REDIS_URL, server_missing


@dataclass(frozen=True, slots=True)
class Target:
    """A store URL with options, and how to drop what the test created on it."""

    name: str
    url: str
    options: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[Target], None] | None = None

    def open(self) -> Any:
        return open_store(self.url, **self.options)


def _drop_postgres(target: Target) -> None:
    async def drop() -> None:
        store: Any = await target.open()
        try:
            await store.drop_schema()
        finally:
            await store.close()

    asyncio.run(drop())


def _drop_redis(target: Target) -> None:
    import redis

    client = redis.Redis.from_url(target.url)
    try:
        prefix = target.options["prefix"]
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
    finally:
        client.close()


def _check_reachable(target: Target, what: str, start: str) -> None:
    """Open once with `ensure_schema` (workers then skip it), failing loudly if down."""

    async def ping() -> None:
        store = await target.open()
        await store.close()

    try:
        asyncio.run(ping())
    except Exception as exc:
        server_missing(what, target.url, exc, start)


ADAPTERS = [
    name
    for name in ("sqlite", "postgres", "redis")
    if importlib.util.find_spec(f"ranvier.stores.{name}") is not None
]
_WANTED = os.environ.get("RANVIER_TEST_ADAPTERS")
if _WANTED and not os.environ.get("CI"):  # the same local narrowing as tests/adapters
    ADAPTERS = [a for a in ADAPTERS if a in {w.strip() for w in _WANTED.split(",")}]


def make_target(name: str, tmp_path: Path) -> Target:
    fresh = uuid.uuid4().hex[:10]
    if name == "sqlite":
        target = Target(name, f"sqlite:///{tmp_path}/crash.db")
        _check_reachable(target, "SQLite", "(a file: check the temp dir)")
        return target
    if name == "postgres":
        target = Target(
            name,
            POSTGRES_URL,
            {
                "table_prefix": f"crash{fresh}_persistence",
                "min_connections": 1,
                "max_connections": 4,
            },
            _drop_postgres,
        )
        _check_reachable(target, "PostgreSQL", PG_START)
        return target
    target = Target(name, REDIS_URL, {"prefix": f"ranvier:crash{fresh}"}, _drop_redis)
    _check_reachable(target, "Redis", REDIS_START)
    return target
