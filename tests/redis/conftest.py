"""Fixtures for the Redis-only tests: servers these tests start and stop themselves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from ranvier.stores.redis import RedisPersistenceStore
from tests.adapters.redis import drop_prefix, new_prefix
from tests.redis.servers import RedisClusterServers, RedisServer, shared_cluster, start_cluster
from tests.servers import REDIS_URL


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test only (no persistence): free to CLIENT KILL, FLUSH, stop."""
    server = RedisServer.start(tmp_path / "redis", "--appendonly", "no")
    yield server
    server.stop()


@pytest.fixture
def aof_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test with AOF `appendfsync always` (guarantee 1)."""
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    server = RedisServer.start(tmp_path / "redis-aof", *aof)
    yield server
    server.stop()


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisClusterServers]:
    """A 3-master cluster of this test only (for slot migrations)."""
    cluster = start_cluster(tmp_path / "cluster")
    yield cluster
    cluster.stop()


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_url(request: pytest.FixtureRequest) -> str:
    return REDIS_URL if request.param == "redis" else shared_cluster().url


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    """A fresh key prefix on `redis_url`, dropped (SCAN + DEL) after the test."""
    value = new_prefix()
    yield value
    await drop_prefix(redis_url, value)


@pytest.fixture
async def redis_store(redis_url: str, prefix: str) -> AsyncIterator[RedisPersistenceStore]:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        yield store


def trace_id() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"
