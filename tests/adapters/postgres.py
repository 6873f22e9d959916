"""PostgreSQL factories: a fresh table prefix per test, plain and hash-partitioned."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ranvier import StoreUnavailable
from ranvier.stores.base import PersistenceStore
from ranvier.stores.postgres import PostgresPersistenceStore
from tests.adapters import Opener
from tests.servers import PG_START, POSTGRES_URL, server_missing


def fresh_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}_persistence"


async def open_postgres(prefix: str, partitions: int | None = None) -> PostgresPersistenceStore:
    """A small-pool store on the shared test server (fails loudly if it is down)."""
    try:
        return await PostgresPersistenceStore.connect(
            POSTGRES_URL,
            table_prefix=prefix,
            partitions=partitions,
            min_connections=1,
            max_connections=4,
        )
    except StoreUnavailable as exc:
        server_missing("PostgreSQL", POSTGRES_URL, exc, PG_START)
        raise


@asynccontextmanager
async def _factory(partitions: int | None) -> AsyncIterator[Opener]:
    prefix = fresh_prefix()
    admin = await open_postgres(prefix, partitions)
    await admin.ensure_schema()
    opened: list[PostgresPersistenceStore] = []

    async def opener() -> PersistenceStore:
        store = await open_postgres(prefix, partitions)
        opened.append(store)
        return store

    try:
        yield opener
    finally:
        for store in opened:
            await store.close()
        await admin.drop_schema()
        await admin.close()


def postgres_factory(request: Any, tmp_path: Path) -> Any:
    return _factory(None)


def partitioned_factory(request: Any, tmp_path: Path) -> Any:
    return _factory(16)


FACTORIES = {"postgres": postgres_factory, "postgres-partitioned": partitioned_factory}
