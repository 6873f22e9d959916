"""Schema tasks: create it, and describe what a store holds (version, tables, key shapes).

Adapters may offer `async def describe() -> dict` (schema_version, tables or
key_patterns, pool, persistence...); without it, `describe` asks the backend directly
(`ranvier.ops.backends`), read-only.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from ranvier.errors import InvalidInput
from ranvier.ops import backends
from ranvier.ops.stores import open_with_defaults
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import resolve_store_url


async def ensure(url: str | None, *, partitions: int | None = None) -> dict[str, Any]:
    """Create the store's schema (idempotent); `partitions` only where the adapter takes it."""
    store = await open_with_defaults(url, ensure_schema=False)
    try:
        if partitions is None:
            await store.ensure_schema()
        else:
            ensure_schema: Any = store.ensure_schema
            if "partitions" not in inspect.signature(ensure_schema).parameters:
                raise InvalidInput(
                    f"--partitions applies to PostgreSQL only; the {store.adapter} adapter "
                    "has no partitioned tables (drop the option)"
                )
            await ensure_schema(partitions=partitions)
        return await describe(store, resolve_store_url(url))
    finally:
        await store.close()


async def describe(store: PersistenceStore, url: str) -> dict[str, Any]:
    """What the adapter reports about itself, plus its capabilities."""
    info: dict[str, Any] = {
        "adapter": store.adapter,
        "durable": store.capabilities.durable,
        "multi_process": store.capabilities.multi_process,
    }
    own = getattr(store, "describe", None)
    if own is not None:
        info.update(await own())
    elif store.adapter == "sqlite":
        info.update(await asyncio.to_thread(backends.sqlite_info, url))
    elif store.adapter == "postgres":
        info.update(await backends.postgres_info(store))
    elif store.adapter == "redis":
        info.update(await backends.redis_info(store, url))
    return info
