"""Schema tasks: create it, and describe what a store holds (version, tables, key shapes).

Every adapter describes itself (`PersistenceStore.describe`), read-only.
"""

from __future__ import annotations

import inspect
from typing import Any

from ranvier.errors import InvalidInput
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


async def describe(store: PersistenceStore, url: str | None = None) -> dict[str, Any]:
    """What the adapter reports about itself, plus its capabilities."""
    described = await store.describe()
    return {
        "adapter": described.adapter,
        "location": described.location,
        "schema_version": described.schema_version,
        "latest_schema_version": described.latest_schema_version,
        "objects": list(described.objects),
        "settings": dict(described.settings),
        "durable": store.capabilities.durable,
        "multi_process": store.capabilities.multi_process,
    }
