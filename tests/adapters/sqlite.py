from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ranvier.stores.base import PersistenceStore
from ranvier.stores.sqlite import SqlitePersistenceStore
from tests.adapters import Opener


@asynccontextmanager
async def sqlite_factory(request: Any, tmp_path: Path) -> AsyncIterator[Opener]:
    """A fresh file per test; each opener call is a new store (own connections) on it."""
    path = tmp_path / "ranvier-contract.db"
    opened: list[SqlitePersistenceStore] = []

    async def opener() -> PersistenceStore:
        store = SqlitePersistenceStore(path)
        opened.append(store)
        await store.ensure_schema()
        return store

    try:
        yield opener
    finally:
        for store in opened:
            await store.close()


FACTORIES = {"sqlite": sqlite_factory}
