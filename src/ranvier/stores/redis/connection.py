"""Clients from URLs: `redis://`, `rediss://` and `redis+cluster://h1:p1,h2:p2`."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from ranvier.errors import InvalidInput
from ranvier.stores.redis.batch import AnyRedis

CLUSTER_SCHEME = "redis+cluster"
DEFAULT_PORT = 6379


def _retry() -> Retry:
    # a few quick retries for plain commands; scripts have their own (idempotent) re-send
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2)


def client_from_url(url: str, *, socket_timeout: float = 5.0, **options: Any) -> AnyRedis:
    """A redis-py asyncio client (hiredis parser when installed) for the store's URL."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidInput(f"redis URL {url!r} has no scheme; use redis://host:port/db")
    common: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_timeout,
        "retry": _retry(),
        "decode_responses": False,
        **options,
    }
    if scheme.lower() == CLUSTER_SCHEME:
        return _cluster_client(url, rest, **common)
    return Redis.from_url(url, **common)


def _cluster_client(url: str, rest: str, **options: Any) -> RedisCluster:
    location = rest.split("/", 1)[0].split("?", 1)[0]
    credentials, _, hosts = location.rpartition("@")
    if credentials:
        username, _, password = credentials.partition(":")
        options.setdefault("username", unquote(username) or None)
        options.setdefault("password", unquote(password) or None)
    nodes = [_node(url, h) for h in hosts.split(",") if h]
    if not nodes:
        raise InvalidInput(f"cluster URL {url!r} names no node; use redis+cluster://h1:p1,h2:p2")
    return RedisCluster(startup_nodes=nodes, **options)


def _node(url: str, hostport: str) -> ClusterNode:
    host, sep, port = hostport.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        host, port = hostport, str(DEFAULT_PORT)
    try:
        return ClusterNode(host.strip("[]"), int(port))
    except ValueError:
        raise InvalidInput(f"cluster URL {url!r}: {hostport!r} is not host:port") from None
