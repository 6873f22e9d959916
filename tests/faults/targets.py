"""The stores a campaign runs on: the shared servers (a fresh namespace each time) and
servers of the campaign's own, started on free ports and stopped by pid."""

from __future__ import annotations

import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.crash.targets import Target, make_target
from tests.postgres.own_server import OwnServer, own_postgres
from tests.redis.servers import RedisServer

POOL = {"min_connections": 1, "max_connections": 4, "acquire_timeout": 2.0, "connect_timeout": 2.0}


@contextmanager
def shared(adapter: str, tmp: Path) -> Iterator[Target]:
    """SQLite in `tmp`, or a fresh prefix on the shared PostgreSQL or Redis."""
    target = make_target(adapter, tmp)
    try:
        yield target
    finally:
        if target.cleanup is not None:
            target.cleanup(target)


@contextmanager
def restartable_postgres() -> Iterator[tuple[Target, OwnServer]]:
    with own_postgres() as server:
        yield Target("postgres-own", server.url, dict(POOL)), server


@contextmanager
def aof_redis(*extra: str) -> Iterator[tuple[Target, RedisServer]]:
    """A redis-server of our own with AOF `appendfsync always` (guarantee 1)."""
    root = Path(tempfile.mkdtemp(prefix="ranvier-faults-redis-"))
    aof = ("--appendonly", "yes", "--appendfsync", "always", *extra)
    server = RedisServer.start(root / "redis", *aof)
    try:
        prefix = f"ranvier:faults{uuid.uuid4().hex[:8]}"
        yield Target("redis-aof", server.url, {"prefix": prefix}), server
    finally:
        server.stop(signal.SIGKILL)


def restart_redis(server: RedisServer, down_s: float = 0.2) -> None:
    """A crash: SIGKILL, down for `down_s`, then start again on the same AOF (waits
    until it answers)."""
    server.stop(signal.SIGKILL)
    time.sleep(down_s)
    server.launch()


def restart_postgres(server: OwnServer) -> None:
    """A crash: `pg_ctl restart -m immediate` (no checkpoint; the WAL is replayed)."""
    server.restart("immediate")
