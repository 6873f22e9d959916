"""The stores the worker tests run on: memory and the durable adapters present.

The conformance suite's variants (partitioned PostgreSQL, Redis Cluster) test the
stores themselves; recovery needs each kind of store once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.adapters import Opener, all_factories

WORKER_ADAPTERS = ("memory", "sqlite", "postgres", "redis")
FACTORIES = {k: v for k, v in all_factories().items() if k in WORKER_ADAPTERS}


@pytest.fixture(params=sorted(FACTORIES))
async def store_opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    async with FACTORIES[request.param](request, tmp_path) as opener:
        yield opener
