"""Running the store's Lua scripts: coalesced, NOSCRIPT-proof, errors translated once.

Every script call is queued and the queue is flushed once per event-loop tick as one
pipeline (standalone: one connection, one write, the replies read in order; cluster:
redis-py's cluster pipeline, which splits per node and follows MOVED/ASK/TRYAGAIN).
Each caller awaits only its own reply. A batch whose connection breaks is sent once
more: every script is idempotent (an identical re-append is a no-op, requests carry
ids where needed), so a re-send after an unknown outcome never duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hiredis import pack_command
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from ranvier.errors import StoreUnavailable

AnyRedis = Redis | RedisCluster
_TRANSIENT = (RedisConnectionError, RedisTimeoutError, TryAgainError, OSError)


def unavailable(exc: BaseException) -> StoreUnavailable:
    error = StoreUnavailable(f"redis is unavailable: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


@contextmanager
def translate() -> Iterator[None]:
    """The one place where redis-py errors become `StoreUnavailable`."""
    try:
        yield
    except (RedisError, RedisClusterException, OSError) as exc:
        raise unavailable(exc) from exc


class Script:
    """A Lua script, called by its SHA1 (EVAL once if the server does not know it)."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()


@dataclass(slots=True)
class _Call:
    script: Script
    keys: Sequence[str]
    args: Sequence[str | bytes]
    future: asyncio.Future[Any]
    use_eval: bool = False

    def command(self) -> tuple[str | bytes | int, ...]:
        head = ("EVAL", self.script.source) if self.use_eval else ("EVALSHA", self.script.sha)
        return (*head, len(self.keys), *self.keys, *self.args)

    def resolve(self, reply: Any) -> None:
        if not self.future.done():
            self.future.set_result(reply)

    def reject(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(unavailable(exc))


def _replies_of(conn: Connection) -> Callable[[], Awaitable[Any]]:
    """Read replies straight from the connection's parser (hiredis when installed), error
    replies returned as exceptions: `Connection.read_response` adds bookkeeping per reply
    that costs more CPU than the parsing itself on a long pipeline."""
    parser = getattr(conn, "_parser", None)
    read = getattr(parser, "read_response", None)
    return read if callable(read) else partial(_read_or_error, conn)


async def _read_or_error(conn: Connection) -> Any:
    try:
        return await conn.read_response()
    except ResponseError as exc:
        return exc


def _private_pool(client: Redis) -> ConnectionPool:
    """The runner's own pool: like the client's, but a batch's whole exchange is timed as
    one (`asyncio.timeout`) instead of each socket write in a task (`wait_for`)."""
    kwargs = {**client.connection_pool.connection_kwargs, "socket_timeout": None}
    return ConnectionPool(connection_class=client.connection_pool.connection_class, **kwargs)


@dataclass(slots=True)
class ScriptRunner:
    client: AnyRedis
    retries: int = 1
    """How many times a batch is re-sent after its connection broke."""
    _queue: list[_Call] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _pool: ConnectionPool | None = None
    _timeout: float | None = None
    _busy: int = 0
    """Batches out and not yet answered."""
    _idle: list[Connection] = field(default_factory=list)

    def __post_init__(self) -> None:
        if isinstance(self.client, Redis):
            self._timeout = self.client.connection_pool.connection_kwargs.get("socket_timeout")
            self._pool = _private_pool(self.client)

    def submit(
        self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]
    ) -> asyncio.Future[Any]:
        """Queue one call now (it goes out with this tick's batch); await the future."""
        loop = asyncio.get_running_loop()
        if not self._queue:
            loop.call_soon(self._flush)
        call = _Call(script, keys, args, loop.create_future())
        self._queue.append(call)
        return call.future

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[str | bytes]) -> Any:
        if self._busy or self._queue:
            return await self.submit(script, keys, args)
        # idle: send at once from the caller's task (no tick of delay, no task); calls
        # that come while this one is out are queued and go out together
        call = _Call(script, keys, args, asyncio.get_running_loop().create_future())
        self._busy += 1
        try:
            await self._send([call])
        finally:
            self._busy -= 1
        return call.future.result()

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.ensure_future(self._send_batch(batch))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send_batch(self, batch: list[_Call]) -> None:
        self._busy += 1
        try:
            await self._send(batch)
        finally:
            self._busy -= 1

    async def _send(self, batch: list[_Call]) -> None:
        failures = 0
        while batch:
            try:
                batch = await self._exchange(batch)
            except _TRANSIENT as exc:
                failures += 1
                batch = [c for c in batch if not c.future.done()]
                if failures > self.retries:
                    for call in batch:
                        call.reject(exc)
                    return
                await asyncio.sleep(0.01 * failures)
            except BaseException as exc:  # every caller must hear of it
                for call in batch:
                    call.reject(exc)
                if not isinstance(exc, Exception):
                    raise
                return

    async def _exchange(self, batch: list[_Call]) -> list[_Call]:
        """Send one batch; returns the calls to send again (with EVAL after NOSCRIPT)."""
        if self._pool is None:
            assert isinstance(self.client, RedisCluster)
            return await self._exchange_cluster(self.client, batch)
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange_single(self._pool, batch)
        except TimeoutError as exc:
            raise RedisTimeoutError(f"no reply from redis within {self._timeout} s") from exc

    async def _exchange_single(self, pool: ConnectionPool, batch: list[_Call]) -> list[_Call]:
        # a free list of our own: the pool's get/release is costly per batch
        conn = self._idle.pop() if self._idle else await pool.get_connection()  # type: ignore[no-untyped-call]
        again: list[_Call] = []
        try:
            packed = b"".join([pack_command(c.command()) for c in batch])  # type: ignore[arg-type]
            await conn.send_packed_command(packed, check_health=False)
            read = _replies_of(conn)
            for call in batch:
                reply = await read()
                if isinstance(reply, NoScriptError):
                    call.use_eval = True
                    again.append(call)
                elif isinstance(reply, ResponseError):
                    call.reject(reply)
                else:
                    call.resolve(reply)
        except BaseException:
            await self._discard(pool, conn)
            raise
        self._idle.append(conn)
        return again

    async def _discard(self, pool: ConnectionPool, conn: Connection) -> None:
        """Drop a broken connection, and the idle ones: they were likely cut too (restart,
        CLIENT KILL); the pool checks them before handing them out again."""
        stale, self._idle = [conn, *self._idle], []  # before any await: others pop
        for each in stale:
            await each.disconnect()
            await pool.release(each)

    async def transaction(self, commands: Sequence[tuple[str | int, ...]]) -> list[Any]:
        """Commands on one slot in one MULTI/EXEC round trip; their replies (raw on a single
        server: HGETALL is a flat list; parsed by redis-py on a cluster: a dict)."""
        if self._pool is None:
            with translate():
                pipe = self.client.pipeline(transaction=True)
                for command in commands:
                    pipe.execute_command(*command)
                return list(await pipe.execute())
        for attempt in range(self.retries + 1):
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._transaction_single(self._pool, commands)
            except (TimeoutError, *_TRANSIENT) as exc:
                if attempt == self.retries:
                    raise unavailable(exc) from exc
            except RedisError as exc:
                raise unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _transaction_single(
        self, pool: ConnectionPool, commands: Sequence[tuple[str | int, ...]]
    ) -> list[Any]:
        conn = self._idle.pop() if self._idle else await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            wrapped = (("MULTI",), *commands, ("EXEC",))
            packed = b"".join([pack_command(c) for c in wrapped])  # type: ignore[arg-type]
            await conn.send_packed_command(packed, check_health=False)
            read = _replies_of(conn)
            for _ in range(len(commands) + 2):  # +OK, +QUEUED per command, then EXEC's
                replies = await read()
                if isinstance(replies, ResponseError):
                    raise replies
        except BaseException:
            await self._discard(pool, conn)
            raise
        self._idle.append(conn)
        return list(replies)

    async def _exchange_cluster(self, client: RedisCluster, batch: list[_Call]) -> list[_Call]:
        pipe = client.pipeline()
        for call in batch:
            pipe.execute_command(*call.command())
        replies = await pipe.execute(raise_on_error=False)
        again: list[_Call] = []
        for call, reply in zip(batch, replies, strict=True):
            if isinstance(reply, NoScriptError):
                call.use_eval = True
                again.append(call)
            elif isinstance(reply, _TRANSIENT):
                raise reply
            elif isinstance(reply, BaseException):
                call.reject(reply)
            else:
                call.resolve(reply)
        return again

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._pool is not None:
            self._idle.clear()
            await self._pool.disconnect()
