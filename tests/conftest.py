from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from ranvier.stores.base import PersistenceStore
from tests.adapters import Opener, all_factories

FACTORIES = all_factories()


@pytest.fixture(params=sorted(FACTORIES))
async def store_opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens stores on one fresh namespace of the adapter under test."""
    async with FACTORIES[request.param](request, tmp_path) as opener:
        yield opener


@pytest.fixture
async def store(store_opener: Opener) -> PersistenceStore:
    return await store_opener()
