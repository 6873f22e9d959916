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
from typing import Any, TypeVar

from hiredis import pack_command
from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
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
from ranvier.stores.redis.connection import (
    DEFAULT_POOL_TIMEOUT,
    AnyRedis,
    Gate,
    WaitingPool,
    cluster_gate,
)

__all__ = ["AnyRedis", "Script", "ScriptRunner", "translate", "unavailable"]
_T = TypeVar("_T")
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


def _private_pool(client: Redis) -> WaitingPool:
    """A pool like the client's for a caller's own client whose pool cannot wait."""
    pool = client.connection_pool
    return WaitingPool(
        connection_class=pool.connection_class,
        max_connections=pool.max_connections,
        timeout=DEFAULT_POOL_TIMEOUT,
        **pool.connection_kwargs,
    )


@dataclass(slots=True)
class ScriptRunner:
    client: AnyRedis
    retries: int = 1
    """How many times a batch is re-sent after its connection broke."""
    _queue: list[_Call] = field(default_factory=list)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _pool: WaitingPool | None = None
    """One server: the client's own pool (or a private one), `spare` its free list."""
    _owns_pool: bool = False
    _gate: Gate | None = None
    """A cluster: `max_connections` exchanges at once."""
    _timeout: float | None = None
    _busy: int = 0
    """Batches out and not yet answered."""

    def __post_init__(self) -> None:
        if isinstance(self.client, Redis):
            pool = self.client.connection_pool
            if isinstance(pool, WaitingPool):
                self._pool = pool
            else:
                self._pool, self._owns_pool = _private_pool(self.client), True
            self._timeout = self._pool.socket_timeout
        else:
            self._gate = cluster_gate(self.client)

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
        pool = self._pool
        if pool is None:
            assert isinstance(self.client, RedisCluster) and self._gate is not None
            client = self.client
            return await self._gate.run(lambda: self._exchange_cluster(client, batch))
        # inline (every checkpoint comes here): a free list of our own, as the pool's
        # get/release is costly per batch; the wait for a connection has its own timeout
        conn = pool.spare.pop() if pool.spare else await self._checkout(pool)
        try:
            async with asyncio.timeout(self._timeout):
                again = await self._exchange_single(batch, conn)
        except BaseException as exc:
            await self._discard(pool, conn)
            if isinstance(exc, TimeoutError):  # the whole exchange's: transient, as redis-py's
                raise RedisTimeoutError(f"no reply from redis within {self._timeout} s") from exc
            raise
        if pool.waiting:
            await self._give_back(pool, conn)
        else:
            pool.spare.append(conn)
        return again

    async def _on_connection(self, work: Callable[[Connection], Awaitable[_T]]) -> _T:
        """`work` on a connection of the runner's own, as `_exchange` does."""
        pool = self._pool
        assert pool is not None
        conn = pool.spare.pop() if pool.spare else await self._checkout(pool)
        try:
            async with asyncio.timeout(self._timeout):
                result = await work(conn)
        except BaseException as exc:
            await self._discard(pool, conn)
            if isinstance(exc, TimeoutError):  # the whole exchange's: transient, as redis-py's
                raise RedisTimeoutError(f"no reply from redis within {self._timeout} s") from exc
            raise
        if pool.waiting:
            await self._give_back(pool, conn)
        else:
            pool.spare.append(conn)
        return result

    @staticmethod
    async def _checkout(pool: WaitingPool) -> Connection:
        conn = await pool.get_connection()
        conn.socket_timeout = None  # no wait_for per socket write: the exchange is timed
        return conn

    async def _exchange_single(self, batch: list[_Call], conn: Connection) -> list[_Call]:
        again: list[_Call] = []
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
        return again

    @staticmethod
    async def _give_back(pool: WaitingPool, conn: Connection) -> None:
        conn.socket_timeout = pool.socket_timeout
        await pool.release(conn)

    async def _discard(self, pool: WaitingPool, conn: Connection) -> None:
        """Drop a broken connection, and the spare ones: they were likely cut too (restart,
        CLIENT KILL); the pool checks them before handing them out again."""
        stale, pool.spare = [conn, *pool.spare], []  # before any await: others pop
        for each in stale:
            await each.disconnect()
            await self._give_back(pool, each)

    async def transaction(self, commands: Sequence[tuple[str | int, ...]]) -> list[Any]:
        """Commands on one slot in one MULTI/EXEC round trip; their replies (raw on a single
        server: HGETALL is a flat list; parsed by redis-py on a cluster: a dict)."""
        if self._gate is not None:
            with translate():
                return await self._gate.run(partial(self._transaction_cluster, commands))
        for attempt in range(self.retries + 1):
            try:
                return await self._on_connection(partial(self._transaction_single, commands))
            except _TRANSIENT as exc:
                if attempt == self.retries:
                    raise unavailable(exc) from exc
            except RedisError as exc:
                raise unavailable(exc) from exc
        raise AssertionError("unreachable")

    async def _transaction_cluster(self, commands: Sequence[tuple[str | int, ...]]) -> list[Any]:
        pipe = self.client.pipeline(transaction=True)
        for command in commands:
            pipe.execute_command(*command)
        return list(await pipe.execute())

    @staticmethod
    async def _transaction_single(
        commands: Sequence[tuple[str | int, ...]], conn: Connection
    ) -> list[Any]:
        wrapped = (("MULTI",), *commands, ("EXEC",))
        packed = b"".join([pack_command(c) for c in wrapped])  # type: ignore[arg-type]
        await conn.send_packed_command(packed, check_health=False)
        read = _replies_of(conn)
        for _ in range(len(commands) + 2):  # +OK, +QUEUED per command, then EXEC's
            replies = await read()
            if isinstance(replies, ResponseError):
                raise replies
        return list(replies)

    async def on_node(self, script: Script, node: ClusterNode | None, args: Sequence[Any]) -> Any:
        """Run a script that declares no key on one server (`node`: a cluster primary)."""
        target = {} if node is None else {"target_nodes": node}
        with translate():
            try:
                return await self.client.execute_command("EVALSHA", script.sha, 0, *args, **target)
            except NoScriptError:
                return await self.client.execute_command("EVAL", script.source, 0, *args, **target)

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

    def pool_settings(self) -> dict[str, Any]:
        """The connection limit and how long a caller waits past it (for describe)."""
        if self._gate is not None:
            return {"max_connections": self._gate.limit, "pool_timeout": self._gate.timeout}
        assert self._pool is not None
        return {"max_connections": self._pool.max_connections, "pool_timeout": self._pool.timeout}

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        pool = self._pool
        if pool is None:
            return
        if self._owns_pool:
            pool.spare.clear()
            await pool.disconnect()
            return
        spare, pool.spare = pool.spare, []
        for conn in spare:  # the client's pool: its owner closes it
            await self._give_back(pool, conn)
