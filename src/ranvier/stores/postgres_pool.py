"""The asyncpg boundary: pool creation, connection checkout, and error translation.

Every driver error that means "the server cannot be used right now" becomes
`StoreUnavailable` here, in one place, with the driver error as its cause.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from ranvier.errors import InvalidInput, SchemaMismatch, StoreUnavailable
from ranvier.stores import rules

_UNAVAILABLE = (
    OSError,  # refused, reset, unreachable (ConnectionError is a subclass)
    asyncpg.PostgresConnectionError,  # class 08: connection lost or never made
    asyncpg.exceptions.OperatorInterventionError,  # 57: terminated, shutting down, starting
    asyncpg.exceptions.InsufficientResourcesError,  # 53: too many connections, disk full
    asyncpg.InterfaceError,  # the client side: connection or pool closed under us
)


@contextmanager
def translate(what: str = "PostgreSQL") -> Iterator[None]:
    """Driver errors to ranvier errors, by class."""
    try:
        yield
    except TimeoutError as exc:
        raise StoreUnavailable(
            f"{what}: timed out: no pooled connection came free within acquire_timeout "
            "(raise max_connections?) or a statement ran past command_timeout"
        ) from exc
    except asyncpg.exceptions.UndefinedTableError as exc:
        raise SchemaMismatch(f"{what}: {exc}; call ensure_schema() first") from exc
    except _UNAVAILABLE as exc:
        raise StoreUnavailable(f"{what} unavailable: {type(exc).__name__}: {exc}") from exc


SERVER_SETTINGS = {"plan_cache_mode": "force_generic_plan"}
"""Our statements look rows up by key, so one generic plan per prepared statement is as
good as a fresh plan and saves replanning the APPEND statement (~1 ms) on every call."""


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
    with translate(f"PostgreSQL at {_redact(url)}"):
        pool: asyncpg.Pool = await asyncpg.create_pool(
            dsn=url,
            min_size=options.min_connections,
            max_size=options.max_connections,
            timeout=options.connect_timeout,
            command_timeout=options.command_timeout,
            server_settings=SERVER_SETTINGS,
            reset=keep_session,
        )
    return pool


@asynccontextmanager
async def checkout(pool: asyncpg.Pool, acquire_timeout: float) -> AsyncIterator[Any]:
    """A pooled connection for the block; errors inside it are translated too."""
    with translate():
        async with pool.acquire(timeout=acquire_timeout) as conn:
            yield conn


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    creds, at, host = rest.rpartition("@")
    if not at or ":" not in creds:
        return url
    return f"{scheme}{sep}{creds.split(':', 1)[0]}:***@{host}"
