"""The asyncpg boundary: pool creation, connection checkout, and error translation.

Every driver error that means "the server cannot be used right now" becomes
`StoreUnavailable` here, in one place, with the driver error as its cause.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ranvier import rules
from ranvier.errors import (
    InvalidInput,
    RanvierError,
    SchemaMismatch,
    SchemaMissing,
    StoreUnavailable,
)

_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable (ConnectionError is a subclass)
    asyncpg.PostgresConnectionError,  # class 08: connection lost or never made
    asyncpg.exceptions.OperatorInterventionError,  # 57: terminated, shutting down, starting
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.InterfaceError,  # the client side: connection or pool closed under us
)

RETRYABLE = (asyncpg.exceptions.DeadlockDetectedError, asyncpg.exceptions.SerializationError)
"""Errors after which a whole statement may simply run again: nothing was written."""

_FIXES: tuple[tuple[type[BaseException], type[RanvierError], str], ...] = (
    (
        asyncpg.exceptions.InvalidCatalogNameError,
        StoreUnavailable,
        "create the database (createdb NAME, or CREATE DATABASE NAME) or fix its name in the URL",
    ),
    (
        asyncpg.exceptions.InvalidAuthorizationSpecificationError,  # and wrong passwords
        StoreUnavailable,
        "check the user and password in the URL (and the server's pg_hba.conf)",
    ),
    (
        asyncpg.exceptions.UndefinedTableError,
        SchemaMissing,
        "create the schema: `ranvier schema ensure` or `await store.ensure_schema()`",
    ),
    (
        asyncpg.exceptions.UndefinedColumnError,
        SchemaMismatch,
        "the tables are not what this ranvier writes: run ensure_schema(), which names them",
    ),
    (
        asyncpg.exceptions.InvalidCachedStatementError,
        StoreUnavailable,
        "the schema changed under a prepared statement (a migration ran): retry",
    ),
    (asyncpg.DataError, InvalidInput, "a value is out of the range its column holds"),
)
"""Driver errors that have a fix to name, by class (first match): (class, ours, the fix)."""


def translated(exc: BaseException, what: str = "PostgreSQL") -> BaseException | None:
    """The ranvier error for a driver error (its cause set), or None to let it through."""
    error: BaseException | None = None
    if isinstance(exc, TimeoutError):
        error = StoreUnavailable(f"{what}: a statement ran past command_timeout")
    elif isinstance(exc, _UNAVAILABLE):
        error = StoreUnavailable(f"{what} unavailable: {type(exc).__name__}: {exc}")
    else:
        for driver, ours, fix in _FIXES:
            if isinstance(exc, driver):
                error = ours(f"{what}: {_one_line(exc)}: {fix}")
                break
    if error is not None:
        error.__cause__ = exc
    return error


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def pool_exhausted(pool: asyncpg.Pool, acquire_timeout: float) -> StoreUnavailable:
    return StoreUnavailable(
        "PostgreSQL: timed out waiting for a pooled connection: none came free within "
        f"acquire_timeout={acquire_timeout:g} s "
        f"(the pool has max_connections={pool.get_max_size()}): raise max_connections (within "
        "the server's max_connections) or acquire_timeout, or run fewer operations at once"
    )


@contextmanager
def translate(what: str = "PostgreSQL") -> Iterator[None]:
    """Driver errors to ranvier errors, by class."""
    try:
        yield
    except Exception as exc:
        error = translated(exc, what)
        if error is None:
            raise
        raise error from exc


SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan", "enable_seqscan": "off"}
"""Our statements look rows up by key, so one generic plan per prepared statement is as
good as a fresh plan and saves replanning the APPEND statement (~1 ms) on every call.
Those plans are made once per connection, often while the tables are still small (a new
deployment, a fresh prefix), and for a small table a seq scan costs less than an index:
the batched APPEND then kept reading the whole state table on every batch, long after it
had grown (-30% checkpoints/s within 3,000 runs). Every statement has an index path, and
`enable_seqscan = off` only prices seq scans out where one exists (docs/decisions.md)."""


async def keep_session(conn: asyncpg.Connection) -> None:
    """Release without asyncpg's reset query (RESET ALL, UNLISTEN *...): the store leaves
    no session state behind (advisory locks are transaction-scoped), and the reset is a
    second round trip on every operation. An open transaction is still rolled back."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolOptions:
    """The runbook's pool sizing: 5 warm connections, at most 20, 3 s to get one."""

    min_connections: int = 5
    max_connections: int = 20
    acquire_timeout: float = 3.0
    connect_timeout: float = 10.0
    command_timeout: float | None = None

    def __post_init__(self) -> None:
        rules.validate_positive("max_connections", self.max_connections)
        if type(self.min_connections) is not int or not (
            0 <= self.min_connections <= self.max_connections
        ):
            raise InvalidInput("min_connections must be an int from 0 to max_connections")
        for name in ("acquire_timeout", "connect_timeout"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value <= 0:
                raise InvalidInput(f"{name} must be a positive number of seconds")


async def create_pool(url: str, options: PoolOptions) -> asyncpg.Pool:
    """Open a pool on `url` (postgres:// or postgresql://); `StoreUnavailable` if unreachable."""
    where = f"PostgreSQL at {rules.masked_url(url)}"
    with translate(where):
        try:
            pool: asyncpg.Pool = await asyncpg.create_pool(
                dsn=url,
                min_size=options.min_connections,
                max_size=options.max_connections,
                timeout=options.connect_timeout,
                command_timeout=options.command_timeout,
                server_settings=SERVER_SETTINGS,
                reset=keep_session,
            )
        except _REFUSED_SETTING as exc:  # asyncpg sends unknown URL parameters as settings
            raise InvalidInput(
                f"{where}: {_one_line(exc)}: the URL's query parameters are the server's "
                f"settings, libpq's (sslmode...) and ranvier's ({', '.join(URL_OPTIONS)})"
            ) from exc
    return pool


_REFUSED_SETTING = (
    asyncpg.exceptions.UndefinedObjectError,  # unrecognized configuration parameter
    asyncpg.exceptions.CantChangeRuntimeParamError,
)

URL_OPTIONS: dict[str, type[Any]] = {
    "table_prefix": str,
    "partitions": int,
    "min_connections": int,
    "max_connections": int,
    "acquire_timeout": float,
    "connect_timeout": float,
    "command_timeout": float,
}
"""The store's options a URL may carry as query parameters (`?table_prefix=x&...`)."""


def split_url(url: str) -> tuple[str, dict[str, Any]]:
    """The URL without ranvier's query parameters, and those as options."""
    parts = urlsplit(url)
    options: dict[str, Any] = {}
    rest: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name == "prefix":
            raise InvalidInput(
                "PostgreSQL URLs take ?table_prefix=NAME (the tables' prefix), not ?prefix="
            )
        kind = URL_OPTIONS.get(name)
        if kind is None:
            rest.append((name, value))
            continue
        try:
            options[name] = kind(value)
        except ValueError:
            raise InvalidInput(
                f"URL parameter {name}={value!r} must be {'an int' if kind is int else 'a number'}"
            ) from None
    return urlunsplit(parts._replace(query=urlencode(rest))), options


@asynccontextmanager
async def checkout(pool: asyncpg.Pool, acquire_timeout: float) -> AsyncIterator[Any]:
    """A pooled connection for the block; errors inside it are translated too."""
    with translate():
        try:
            conn = await pool.acquire(timeout=acquire_timeout)
        except TimeoutError as exc:
            raise pool_exhausted(pool, acquire_timeout) from exc
        try:
            yield conn
        finally:
            await pool.release(conn)


KEEP_CONNECTIONS = 2
"""Connections a store keeps checked out between operations (see `Connections`)."""
LINGER_SECONDS = 0.02
"""How long a kept connection may sit unused before it goes back to the pool."""


class Connections:
    """Pool checkout that keeps up to `keep` connections for the store's next operations.

    asyncpg's `Pool.acquire(timeout=...)` and `Pool.release` each start a task (wait_for,
    shield): ~80 us of CPU per operation, as much as the statement itself. A connection
    handed back cleanly is kept here instead and reused at once; whatever sits unused
    for `linger` seconds goes back to the pool, so other users of a small pool wait at
    most that long. A connection that saw any error goes straight back to the pool,
    which checks, cancels or replaces it.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        acquire_timeout: float,
        *,
        keep: int = KEEP_CONNECTIONS,
        linger: float = LINGER_SECONDS,
    ) -> None:
        self._pool = pool
        self._acquire_timeout = acquire_timeout
        self._keep = keep
        self._linger = linger
        self._idle: list[Any] = []
        self._last_used = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._releasing: set[asyncio.Task[None]] = set()
        self._closed = False

    def checkout(self) -> _Checkout:
        """`async with connections.checkout() as conn:` errors inside are translated too."""
        return _Checkout(self)

    async def _take(self) -> Any:
        conn = self._idle.pop() if self._idle else None
        if conn is not None and _usable(conn):
            return conn
        if conn is not None:  # closed under us while kept: the pool cleans it up
            await self._pool.release(conn)
        try:
            async with asyncio.timeout(self._acquire_timeout):
                return await self._pool.acquire()
        except TimeoutError as exc:  # every connection busy: the pool's size is the fix
            raise pool_exhausted(self._pool, self._acquire_timeout) from exc

    def _keep_it(self, conn: Any) -> bool:
        if self._closed or len(self._idle) >= self._keep:
            return False
        if not _usable(conn) or conn.is_in_transaction():
            return False
        loop = asyncio.get_running_loop()
        self._last_used = loop.time()
        if self._timer is None:
            self._timer = loop.call_at(self._last_used + self._linger, self._expire)
        return True

    def _expire(self) -> None:
        self._timer = None
        if not self._idle:
            return
        loop = asyncio.get_running_loop()
        due = self._last_used + self._linger
        if loop.time() < due:  # used since the timer was set: look again later
            self._timer = loop.call_at(due, self._expire)
            return
        self._release_idle()

    def _release_idle(self) -> None:
        while self._idle:
            task = asyncio.create_task(self._release(self._idle.pop()))
            self._releasing.add(task)
            task.add_done_callback(self._releasing.discard)

    async def _release(self, conn: Any) -> None:
        with suppress(Exception):  # the pool terminates a connection it cannot reset
            await self._pool.release(conn)

    async def close_idle(self) -> None:
        """Hand the kept connections back to the pool now (the store stays usable)."""
        self._release_idle()
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)

    async def close(self) -> None:
        """Hand every kept connection back to the pool (the pool stays open)."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._release_idle()
        while self._releasing:
            await asyncio.gather(*self._releasing, return_exceptions=True)


def _usable(conn: Any) -> bool:
    """Open and still ours: when the server drops a connection, asyncpg hands it back to
    the pool by itself, and the proxy we kept then raises on every call."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


class _Checkout:
    """One checkout of `Connections` (a plain class: cheaper than a generator-based one)."""

    __slots__ = ("_conn", "_owner")

    def __init__(self, owner: Connections) -> None:
        self._owner = owner
        self._conn: Any = None

    async def __aenter__(self) -> Any:
        idle = self._owner._idle
        if idle and _usable(idle[-1]):  # the common case, without a coroutine
            self._conn = idle.pop()
            return self._conn
        try:
            self._conn = await self._owner._take()
        except Exception as exc:
            error = translated(exc)
            if error is None:
                raise
            raise error from exc
        return self._conn

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        owner = self._owner
        if exc is None and owner._keep_it(self._conn):
            owner._idle.append(self._conn)
            return
        try:
            await owner._pool.release(self._conn)
        except Exception as failure:
            if exc is None:  # else the body's error is the one to report
                error = translated(failure)
                if error is None:
                    raise
                raise error from failure
        if isinstance(exc, Exception):
            error = translated(exc)
            if error is not None:
                raise error from exc
