from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ranvier import InMemoryPersistenceStore
from ranvier.stores.base import PersistenceStore
from tests.adapters import Opener


@asynccontextmanager
async def memory_factory(request: Any, tmp_path: Path) -> AsyncIterator[Opener]:
    store = InMemoryPersistenceStore()

    async def opener() -> PersistenceStore:
        return store  # one process, one store: a second "connection" is the same object

    yield opener
    await store.close()


FACTORIES = {"memory": memory_factory}
