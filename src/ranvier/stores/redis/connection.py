"""Clients from URLs: `redis://`, `rediss://`, `redis+cluster://h1:p1,h2:p2` and
`rediss+cluster://` (TLS), with the store's own options in the query string.

Past `max_connections`, a caller waits (at most `pool_timeout` s) for a connection rather
than failing: redis-py's blocking pool on one server; on a cluster, whose per-node pools
cannot wait, a gate that lets as many operations through at once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import URL_QUERY_ARGUMENT_PARSERS, Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from ranvier import rules
from ranvier.errors import InvalidInput

AnyRedis = Redis | RedisCluster
T = TypeVar("T")

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}
"""Cluster URL schemes, and whether they use TLS."""
DEFAULT_PORT = 6379
DEFAULT_MAX_CONNECTIONS = 100
DEFAULT_POOL_TIMEOUT = 10.0
DEFAULT_SOCKET_TIMEOUT = 5.0

_STORE_OPTIONS: dict[str, Callable[[str], Any]] = {
    "prefix": str,
    "ttl_seconds": int,
    "max_payload_bytes": int,
}
_CLIENT_OPTIONS: dict[str, Callable[[str], Any]] = {
    "max_connections": int,
    "pool_timeout": float,
    "socket_timeout": float,
}
_OURS = {*_STORE_OPTIONS, *_CLIENT_OPTIONS}


@cache
def _driver_options() -> frozenset[str]:
    """redis-py's own URL query options that pass through (`timeout` is `pool_timeout`)."""
    ssl = [p for p in inspect.signature(SSLConnection.__init__).parameters if p.startswith("ssl_")]
    return frozenset({*URL_QUERY_ARGUMENT_PARSERS, *ssl, "client_name"} - _OURS - {"timeout"})


class PoolExhausted(RedisError):
    """Every connection stayed busy for the whole wait (a driver-level error: the store's
    one translation place turns it into `StoreUnavailable`)."""

    def __init__(self, max_connections: int, timeout: float | None) -> None:
        super().__init__(
            f"no free connection within {timeout} s: all max_connections={max_connections} "
            "were busy; raise max_connections (store option or ?max_connections= in the "
            "URL) or pool_timeout, or run fewer operations at once"
        )


@dataclass(frozen=True, slots=True)
class StoreUrl:
    """A store URL split: what redis-py reads, and the options ranvier takes itself."""

    url: str
    """The URL with only redis-py's own query options left."""
    cluster: bool
    tls: bool
    store_options: dict[str, Any] = field(default_factory=dict)
    """prefix, ttl_seconds, max_payload_bytes (for the store)."""
    client_options: dict[str, Any] = field(default_factory=dict)
    """max_connections, pool_timeout, socket_timeout (for the client)."""


def parse_url(url: str) -> StoreUrl:
    """Split `url`; an unknown query option is `InvalidInput` naming the known ones."""
    if type(url) is not str:
        raise InvalidInput(f"redis URL must be a str, got {type(url).__name__}")
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise InvalidInput(f"redis URL {url!r} has no scheme; use redis://host:port/db")
    parts = urlsplit(url)
    kept: list[tuple[str, str]] = []
    store: dict[str, Any] = {}
    client: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _STORE_OPTIONS:
            store[name] = _converted(url, name, value, _STORE_OPTIONS[name])
        elif name in _CLIENT_OPTIONS:
            client[name] = _converted(url, name, value, _CLIENT_OPTIONS[name])
        elif name in _driver_options():
            kept.append((name, value))
        else:
            raise InvalidInput(
                f"unknown option {name!r} in redis URL {rules.masked_url(url)}; the store "
                f"takes {', '.join(sorted(_OURS))}, and redis-py's "
                f"{', '.join(sorted(_driver_options()))}"
            )
    clean = urlunsplit(parts._replace(query=urlencode(kept)))
    tls = CLUSTER_SCHEMES.get(scheme.lower())
    return StoreUrl(clean, tls is not None, bool(tls), store, client)


def _converted(url: str, name: str, value: str, kind: Callable[[str], Any]) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInput(
            f"option {name}={value!r} in redis URL {rules.masked_url(url)} must be "
            f"{'an int' if kind is int else 'a number'}"
        ) from None


def _retry() -> Retry:
    # a few quick retries for plain commands; scripts have their own (idempotent) re-send
    return Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2)


def client_from_url(
    url: str,
    *,
    socket_timeout: float | None = None,
    max_connections: int | None = None,
    pool_timeout: float | None = None,
    **options: Any,
) -> AnyRedis:
    """A redis-py asyncio client (hiredis parser when installed) for the store's URL.

    Keywords win over the URL's query options; the store's own (prefix...) are ignored.
    """
    parsed = parse_url(url)
    given = {
        "socket_timeout": socket_timeout,
        "max_connections": max_connections,
        "pool_timeout": pool_timeout,
    }
    found = {**parsed.client_options, **{k: v for k, v in given.items() if v is not None}}
    timeout = _seconds("socket_timeout", found.get("socket_timeout", DEFAULT_SOCKET_TIMEOUT))
    size = rules.validate_positive(
        "max_connections", found.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    )
    wait = _seconds("pool_timeout", found.get("pool_timeout", DEFAULT_POOL_TIMEOUT))
    common: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": _retry(),
        "decode_responses": False,
        **options,
    }
    try:
        if parsed.cluster:
            return _cluster_client(parsed, size, wait, common)
        pool = WaitingPool.from_url(parsed.url, max_connections=size, timeout=wait, **common)
    except InvalidInput:
        raise
    except ValueError as exc:  # redis-py's message names the option
        raise InvalidInput(f"redis URL {rules.masked_url(url)}: {exc}") from None
    return Redis.from_pool(pool)


def _seconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < _INF:
        raise InvalidInput(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


_INF = float("inf")


def _cluster_client(
    parsed: StoreUrl, size: int, wait: float, options: dict[str, Any]
) -> WaitingCluster:
    parts = urlsplit(parsed.url)
    credentials, _, hosts = parts.netloc.rpartition("@")
    if credentials:
        username, _, password = credentials.partition(":")
        options.setdefault("username", unquote(username) or None)
        options.setdefault("password", unquote(password) or None)
    for name, value in parse_qsl(parts.query):
        convert = URL_QUERY_ARGUMENT_PARSERS.get(name)
        options.setdefault(name, convert(value) if convert else value)
    nodes = [_node(rules.masked_url(parsed.url), h) for h in hosts.split(",") if h]
    if not nodes:
        raise InvalidInput(
            f"cluster URL {rules.masked_url(parsed.url)} names no node; use "
            "redis+cluster://h1:p1,h2:p2"
        )
    if parsed.tls:
        options.setdefault("ssl", True)
    return WaitingCluster(startup_nodes=nodes, max_connections=size, pool_timeout=wait, **options)


def _node(url: str, hostport: str) -> ClusterNode:
    host, sep, port = hostport.rpartition(":")
    if not sep or host.endswith(":"):  # no port, or a bare IPv6 address
        host, port = hostport, str(DEFAULT_PORT)
    try:
        return ClusterNode(host.strip("[]"), int(port))
    except ValueError:
        raise InvalidInput(f"cluster URL {url!r}: {hostport!r} is not host:port") from None


class WaitingPool(BlockingConnectionPool):
    """redis-py's blocking pool, with a clear error when the wait times out.

    `spare` holds connections the script runner took and keeps between its batches (a
    pool round trip per batch would cost more than the batch's own work): they still count
    against `max_connections`, and a caller that would otherwise wait takes one of them.
    `waiting` counts callers inside `get_connection`, so the runner gives connections
    back to the pool while someone waits.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.spare: list[Connection] = []
        self.waiting = 0

    @property
    def socket_timeout(self) -> float | None:
        value = self.connection_kwargs.get("socket_timeout")
        return None if value is None else float(value)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Connection:
        if self.spare and not self.can_get_connection():
            spare = self.spare.pop()
            spare.socket_timeout = self.socket_timeout
            return spare
        self.waiting += 1
        try:
            conn: Connection = await super().get_connection()  # type: ignore[no-untyped-call]
            return conn
        except RedisConnectionError as exc:
            if isinstance(exc.__cause__, TimeoutError):  # the wait, not the connect
                raise PoolExhausted(self.max_connections, self.timeout) from exc
            raise
        finally:
            self.waiting -= 1


_INSIDE: ContextVar[bool] = ContextVar("ranvier_redis_gate", default=False)


class Gate:
    """At most `limit` operations at once; the next wait up to `timeout` s.

    Re-entrant within a task: redis-py's cluster pipeline calls the client again on its
    retry paths, which must not wait for a place the pipeline itself holds.
    """

    def __init__(self, limit: int, timeout: float) -> None:
        self.limit, self.timeout = limit, timeout
        self._free = asyncio.Semaphore(limit)

    async def run(self, call: Callable[[], Awaitable[T]]) -> T:
        if _INSIDE.get():
            return await call()
        if self._free.locked():
            try:
                async with asyncio.timeout(self.timeout):
                    await self._free.acquire()
            except TimeoutError:
                raise PoolExhausted(self.limit, self.timeout) from None
        else:
            await self._free.acquire()  # returns at once
        token = _INSIDE.set(True)
        try:
            return await call()
        finally:
            _INSIDE.reset(token)
            self._free.release()


class WaitingCluster(RedisCluster):
    """A cluster client whose commands wait at its `gate` (`max_connections` at once,
    which bounds each node's connections by the same number)."""

    def __init__(self, *args: Any, pool_timeout: float, **kwargs: Any) -> None:
        self.gate = Gate(kwargs.get("max_connections", DEFAULT_MAX_CONNECTIONS), pool_timeout)
        super().__init__(*args, **kwargs)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        run = super().execute_command
        return await self.gate.run(lambda: run(*args, **kwargs))


def cluster_gate(client: RedisCluster) -> Gate:
    """The client's gate, or one sized like its nodes' pools (a caller's own client)."""
    if isinstance(client, WaitingCluster):
        return client.gate
    size = client.nodes_manager.connection_kwargs.get("max_connections", DEFAULT_MAX_CONNECTIONS)
    return Gate(int(size), DEFAULT_POOL_TIMEOUT)


def location(client: AnyRedis) -> str:
    """Where a caller's own client points, URL-like and without credentials."""
    if isinstance(client, RedisCluster):
        nodes = ",".join(sorted(str(n.name) for n in client.get_nodes()))
        return f"redis+cluster://{nodes}"
    kwargs = client.connection_pool.connection_kwargs
    scheme = "rediss" if client.connection_pool.connection_class is SSLConnection else "redis"
    host, port = kwargs.get("host", "localhost"), kwargs.get("port", DEFAULT_PORT)
    return f"{scheme}://{host}:{port}/{kwargs.get('db', 0)}"
