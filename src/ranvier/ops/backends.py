"""What each backend says about itself, asked directly and read-only.

Used where an adapter offers no `describe()`: SQLite's file, PostgreSQL's catalog and
pool, Redis's CONFIG. Adapter modules are imported here only when that adapter is
in use, so their drivers stay optional.
"""

from __future__ import annotations

import sqlite3
from typing import Any
from urllib.parse import urlsplit

from ranvier.errors import StoreUnavailable
from ranvier.stores.base import PersistenceStore

_PG_TABLES = """
SELECT c.relname FROM pg_class c
 WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND starts_with(c.relname, $1)
 ORDER BY c.relname
"""
_PG_PARTITIONS = "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass($1)"
_PG_VERSION = "SELECT max(version) FROM {table}"


async def postgres_info(store: PersistenceStore) -> dict[str, Any]:
    """Tables of the store's prefix, schema version, partitions, pool and commit settings."""
    from ranvier.stores.postgres.sql import table_names

    prefix: str = getattr(store, "table_prefix")  # noqa: B009 (adapter-specific)
    pool: Any = getattr(store, "pool")  # noqa: B009
    names = table_names(prefix)
    async with pool.acquire() as conn:
        tables = [r[0] for r in await conn.fetch(_PG_TABLES, f"{prefix}_")]
        version = None
        if names["schema_version"] in tables:
            version = await conn.fetchval(_PG_VERSION.format(table=names["schema_version"]))
        partitions = await conn.fetchval(_PG_PARTITIONS, names["events"])
        settings = {
            name: await conn.fetchval(f"SHOW {name}")
            for name in ("server_version", "synchronous_commit", "max_connections")
        }
    return {
        "schema_version": version,
        "tables": tables,
        "partitions": partitions or None,
        "pool": {
            "min_size": pool.get_min_size(),
            "max_size": pool.get_max_size(),
            "open": pool.get_size(),
            "idle": pool.get_idle_size(),
        },
        "server": settings,
    }


async def redis_info(store: PersistenceStore, url: str) -> dict[str, Any]:
    """Key shapes of the store's prefix and the server's persistence settings."""
    from ranvier.stores.redis.keys import key_patterns

    prefix = getattr(store, "prefix", None)
    info: dict[str, Any] = {
        "schema_version": None,
        "persistence": await redis_persistence(url, getattr(store, "client", None)),
    }
    if isinstance(prefix, str):
        info["key_patterns"] = key_patterns(prefix)
    return info


def sqlite_info(url: str) -> dict[str, Any]:
    from ranvier.stores.sqlite import path_of_url

    path, _ = path_of_url(url)
    try:
        return _read_sqlite_info(path)
    except sqlite3.Error as exc:
        raise StoreUnavailable(
            f"cannot read the SQLite store at {path}: {exc}; check the path in the URL "
            "(sqlite:///relative.db, sqlite:////absolute/path.db)"
        ) from exc


def _read_sqlite_info(path: str) -> dict[str, Any]:
    from ranvier.stores.sqlite.schema import stored_version

    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"
            )
        ]
        journal = connection.execute("PRAGMA journal_mode").fetchone()[0]
        version = stored_version(connection)
    finally:
        connection.close()
    return {"path": path, "schema_version": version, "tables": tables, "journal_mode": journal}


def _text(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


async def redis_persistence(url: str, client: Any = None) -> dict[str, Any]:
    """CONFIG GET appendonly / appendfsync / save, through the store's client if given."""
    from redis.asyncio import Redis
    from redis.exceptions import RedisError, ResponseError

    parts = urlsplit(url)
    first = (parts.netloc.split(",")[0]).rsplit("@", 1)[-1]
    own = client is None
    if own:
        host, _, port = first.partition(":")
        client = Redis(
            host=host or "localhost",
            port=int(port or 6379),
            username=parts.username,
            password=parts.password,
            ssl=parts.scheme == "rediss",
        )
    try:
        config: dict[Any, Any] = {}
        for name in ("appendonly", "appendfsync", "save"):
            answer = await client.config_get(name)
            if answer and all(isinstance(v, dict) for v in answer.values()):
                answer = next(iter(answer.values()))  # cluster: one answer per node
            config.update({_text(k): _text(v) for k, v in answer.items()})
    except ResponseError as exc:  # CONFIG disabled (managed Redis): say we cannot tell
        return {"appendonly": None, "appendfsync": None, "save": None, "error": str(exc)}
    except RedisError as exc:
        raise StoreUnavailable(f"cannot read the Redis configuration at {first}: {exc}") from exc
    finally:
        if own:
            await client.aclose()
    return {
        "appendonly": config.get("appendonly") == "yes",
        "appendfsync": config.get("appendfsync"),
        "save": config.get("save") or "",
    }
