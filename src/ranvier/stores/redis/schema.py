"""The schema marker, and what `describe` reports: the stored version, the key shapes,
and the server settings `doctor` judges (persistence, replication, cluster, eviction).

Redis needs nothing created: `ensure_schema` writes only `<prefix>:schema` (the layout's
version), so that operators and read-only commands can tell a store from an empty prefix.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError

from ranvier.errors import SchemaMismatch, StoreUnavailable
from ranvier.model import StoreDescription
from ranvier.stores.redis import keys as k
from ranvier.stores.redis.batch import AnyRedis, ScriptRunner, translate
from ranvier.stores.redis.scan import nodes_of, scan_all, scan_once

_FSYNC_STRENGTH = ("always", "everysec", "no")
_CONFIG = ("appendonly", "appendfsync", "save", "maxmemory-policy")


async def describe(runner: ScriptRunner, prefix: str, ttl: str, location: str) -> StoreDescription:
    client = runner.client
    settings = await server_settings(client)
    settings.update(runner.pool_settings(), prefix=prefix, ttl_seconds=int(ttl) or None)
    return StoreDescription(
        adapter="redis",
        location=location,
        schema_version=await stored_version(client, prefix),
        latest_schema_version=k.SCHEMA_VERSION,
        objects=tuple(k.key_patterns(prefix)),
        settings=settings,
    )


async def ensure(client: AnyRedis, prefix: str) -> None:
    """Write the version marker (idempotent; many processes may race: same value)."""
    key = k.schema_key(prefix)
    with translate():
        stored = _int(await client.get(key))
        if stored is not None and stored > k.SCHEMA_VERSION:
            raise SchemaMismatch(
                f"the keys under {prefix!r} have layout version {stored}; this ranvier "
                f"writes version {k.SCHEMA_VERSION}: upgrade ranvier"
            )
    if stored is None:
        await _persist_claims(client, prefix)
    if stored != k.SCHEMA_VERSION:
        with translate():
            await client.set(key, str(k.SCHEMA_VERSION))


async def _persist_claims(client: AnyRedis, prefix: str) -> None:
    """The one migration: before version 1, a claim took the key's TTL and could expire
    while its hook had not finished; unfinished claims now never expire."""
    async for keys in scan_all(client, k.compensation_pattern(prefix), 1000):
        with translate():
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            values = await pipe.execute()
            claims = [key for key, v in zip(keys, values, strict=True) if _is_claim(v)]
            if claims:
                pipe = client.pipeline(transaction=False)
                for key in claims:
                    pipe.persist(key)
                await pipe.execute()


def _is_claim(value: bytes | None) -> bool:
    return value is not None and value.startswith(b"claimed\0")


async def stored_version(client: AnyRedis, prefix: str) -> int | None:
    """The marker's version; without one, the current layout if the prefix holds any
    trace or compensation key (written before markers existed), else None."""
    with translate():
        stored = _int(await client.get(k.schema_key(prefix)))
    if stored is not None:
        return stored
    for pattern in (k.state_pattern(prefix), k.compensation_pattern(prefix)):
        if await _any_key(client, pattern):
            return k.SCHEMA_VERSION
    return None


async def _any_key(client: AnyRedis, pattern: str) -> bool:
    for node in await nodes_of(client):
        cursor = 0
        while True:
            cursor, keys = await scan_once(client, node, cursor, pattern, 1000)
            if keys:
                return True
            if cursor == 0:
                break
    return False


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


async def server_settings(client: AnyRedis) -> dict[str, Any]:
    """Persistence, eviction and replication of the server (of every primary of a
    cluster, reported as the weakest of them); None where the server refuses CONFIG or
    INFO (managed Redis often disables CONFIG)."""
    nodes = await nodes_of(client)
    settings: dict[str, Any] = {"cluster": isinstance(client, RedisCluster)}
    configs = [await _config(client, node) for node in nodes]
    if all(c is not None for c in configs):
        settings.update(_weakest([c for c in configs if c is not None]))
    else:
        settings.update(dict.fromkeys(_CONFIG))
    infos = [await _refusable(client, node, "INFO", "replication") for node in nodes]
    if all(isinstance(i, dict) for i in infos):
        settings["role"] = ",".join(sorted({_text(i.get("role")) for i in infos}))
        settings["connected_replicas"] = sum(int(i.get("connected_slaves", 0)) for i in infos)
    else:
        settings.update(role=None, connected_replicas=None)
    return settings


async def _refusable(client: AnyRedis, node: ClusterNode | None, *args: Any) -> Any:
    """The reply, or None when the server refuses the command (disabled, ACL)."""
    target = {} if node is None else {"target_nodes": node}
    try:
        with translate():
            return await client.execute_command(*args, **target)
    except StoreUnavailable as exc:
        if isinstance(exc.__cause__, ResponseError):
            return None
        raise


async def _config(client: AnyRedis, node: ClusterNode | None) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for name in _CONFIG:
        reply = await _refusable(client, node, "CONFIG", "GET", name)
        if reply is None:
            return None
        pairs = (
            reply.items() if isinstance(reply, dict) else zip(reply[::2], reply[1::2], strict=True)
        )
        found.update({_text(key): _text(value) for key, value in pairs})
    return found


def _weakest(configs: list[dict[str, str]]) -> dict[str, Any]:
    """One value per setting for doctor: the least durable among the nodes."""
    fsync = [c.get("appendfsync") for c in configs]
    known = [f for f in fsync if f in _FSYNC_STRENGTH]
    saves = [c.get("save", "") for c in configs]
    policies = sorted({c.get("maxmemory-policy", "") for c in configs})
    return {
        "appendonly": all(c.get("appendonly") == "yes" for c in configs),
        "appendfsync": max(known, key=_FSYNC_STRENGTH.index) if known else None,
        "save": "" if not all(saves) else saves[0],
        "maxmemory-policy": ",".join(policies),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
