"""Redis adapters for the conformance suite: the shared server on 127.0.0.1:6379 and a
3-master Redis Cluster that the tests start themselves (tests/redis/servers.py).

Each test gets a fresh key prefix (`ranvier:persistence:test<hex>`), removed with
SCAN + DEL at the end: never FLUSHALL on a shared server.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ranvier import StoreUnavailable
from ranvier.stores.base import PersistenceStore
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis.connection import client_from_url
from ranvier.stores.redis.scan import scan_all
from tests.adapters import Opener
from tests.redis.servers import shared_cluster
from tests.servers import REDIS_START, REDIS_URL, server_missing


def new_prefix() -> str:
    return f"ranvier:persistence:test{uuid.uuid4().hex[:12]}"


async def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key under `prefix` (SCAN on each primary, DEL key by key)."""
    client = client_from_url(url)
    dropped = 0
    try:
        async for keys in scan_all(client, f"{prefix}:*", 1000):
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.delete(key)
            dropped += sum(await pipe.execute())
    finally:
        await client.aclose()
    return dropped


def _factory(url_of: Callable[[], str]) -> Callable[[Any, Path], Any]:
    @asynccontextmanager
    async def factory(request: Any, tmp_path: Path) -> AsyncIterator[Opener]:
        url, prefix = url_of(), new_prefix()
        opened: list[RedisPersistenceStore] = []

        async def opener() -> PersistenceStore:
            try:
                store = await RedisPersistenceStore.connect(url, prefix=prefix)
                await store.ensure_schema()
            except StoreUnavailable as exc:
                server_missing("Redis", url, exc, REDIS_START)
                raise
            opened.append(store)
            return store

        try:
            yield opener
        finally:
            for store in opened:
                await store.close()
            await drop_prefix(url, prefix)

    return factory


FACTORIES = {
    "redis": _factory(lambda: REDIS_URL),
    "redis-cluster": _factory(lambda: shared_cluster().url),
}
