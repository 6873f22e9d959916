"""One fault-injecting TCP proxy (in the style of Toxiproxy) for every TCP store.

The test switches its behaviour at run time; each switch applies to open connections
and new ones alike:

- `latency(ms, jitter_ms)`: every chunk, both ways, arrives `ms` (+- jitter) later;
  order is kept and chunks in flight overlap, like a long link.
- `bandwidth(bytes_per_s)`: each direction of each connection is throttled.
- `reset_before_request(count, probability)`: the next client chunk never reaches the
  server; the client gets a TCP reset (a connection cut before commit).
- `drop_answer(count, probability, match)`: the server ran the request, its answer is
  dropped and the client reset: the outcome is unknown to the client. With `match`,
  only answers that contain those bytes (e.g. PostgreSQL's `COMMIT` tag) count.
- `black_hole()`: connections stay open and nothing is delivered either way; new ones
  are accepted and never answered.
- `half_open()`: the server's side is closed (it sees the client go) while the
  client's stays open and silent, with no FIN: its writes succeed, its reads hang.
- `heal()`: pass-through again; connections that were black-holed or half-open are
  reset, since what they carried is lost.

`stats` counts connections, chunks and every fault injected, by kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

CHUNK = 65536


@dataclass(slots=True)
class _Countdown:
    """Fault the next `left` eligible chunks (None: every one), each with `probability`."""

    left: int | None
    probability: float
    match: bytes | None = None

    def fires(self, data: bytes, rng: random.Random) -> bool:
        if self.left == 0 or (self.match is not None and self.match not in data):
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        if self.left is not None:
            self.left -= 1
        return True


@dataclass(slots=True)
class _Settings:
    latency_s: float = 0.0
    jitter_s: float = 0.0
    bytes_per_s: float | None = None
    reset: _Countdown | None = None
    drop: _Countdown | None = None
    black_hole: bool = False
    half_open: bool = False


def _reset(writer: asyncio.StreamWriter | None) -> None:
    """Close with a TCP reset (SO_LINGER 0), not a FIN."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class _Link:
    """One client connection and its upstream connection."""

    proxy: FaultProxy
    client_r: asyncio.StreamReader
    client_w: asyncio.StreamWriter
    up_r: asyncio.StreamReader | None = None
    up_w: asyncio.StreamWriter | None = None
    cut_off: bool = False
    """Black-holed or half-open: reset when the proxy heals."""
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def run(self) -> None:
        settings = self.proxy.settings
        if settings.black_hole or settings.half_open:  # accepted, never answered
            self.cut_off = True
            self.proxy.stats["black_holed"] += 1
            await self._discard(self.client_r)
            return
        try:
            self.up_r, self.up_w = await asyncio.open_connection(*self.proxy.upstream)
        except OSError:
            self.proxy.stats["upstream_refused"] += 1
            _reset(self.client_w)
            return
        self.tasks = [
            asyncio.create_task(self._pump(self.client_r, self.up_w, upstream=True)),
            asyncio.create_task(self._pump(self.up_r, self.client_w, upstream=False)),
        ]
        await asyncio.wait(self.tasks, return_when=asyncio.FIRST_COMPLETED)
        if self.cut_off:  # silent until the client leaves or the proxy heals
            await asyncio.wait(self.tasks[:1])
        self.close()

    def cut(self, *, half_open: bool) -> None:
        """Stop delivering both ways; half-open also closes the server's side."""
        if self.cut_off:
            return
        self.cut_off = True
        self.proxy.stats["half_opened" if half_open else "black_holed"] += 1
        if half_open and self.up_w is not None:
            self.up_w.close()  # the server sees the client leave; the client does not

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        _reset(self.client_w)
        if self.up_w is not None:
            self.up_w.close()

    async def _discard(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):
            while await reader.read(CHUNK):
                pass

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        """Read chunks, decide their fate, hand the survivors to a delivering task."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        deliver = asyncio.create_task(self._deliver(queue, writer))
        try:
            while data := await reader.read(CHUNK):
                if not self._admit(data, upstream=upstream):
                    if self.cut_off:
                        continue  # black hole or half-open: swallowed silently
                    return  # a reset: run() closes both sides
                due = time.monotonic() + self._delay()
                queue.put_nowait((due, data))
            queue.put_nowait(None)
            await deliver
        except OSError:
            return
        finally:
            if not deliver.done():
                deliver.cancel()

    def _admit(self, data: bytes, *, upstream: bool) -> bool:
        """True to forward the chunk; False when a fault swallows it."""
        proxy, settings = self.proxy, self.proxy.settings
        stats = proxy.stats
        if self.cut_off:
            return False
        if settings.black_hole or settings.half_open:
            self.cut(half_open=settings.half_open)
            return False
        if upstream and settings.reset and settings.reset.fires(data, proxy.rng):
            stats["reset_before_request"] += 1
            return False
        if not upstream and settings.drop and settings.drop.fires(data, proxy.rng):
            stats["drop_answer"] += 1
            return False
        stats["chunks_up" if upstream else "chunks_down"] += 1
        return True

    def _delay(self) -> float:
        settings = self.proxy.settings
        if settings.latency_s <= 0 and settings.jitter_s <= 0:
            return 0.0
        self.proxy.stats["delayed"] += 1
        jitter = self.proxy.rng.uniform(-settings.jitter_s, settings.jitter_s)
        return max(0.0, settings.latency_s + jitter)

    async def _deliver(
        self, queue: asyncio.Queue[tuple[float, bytes] | None], writer: asyncio.StreamWriter
    ) -> None:
        last_due = 0.0
        while (item := await queue.get()) is not None:
            due, data = item
            due = max(due, last_due)  # jitter never reorders a stream
            last_due = due
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            rate = self.proxy.settings.bytes_per_s
            if rate:
                await asyncio.sleep(len(data) / rate)  # the time the chunk takes on the wire
            if self.cut_off:
                continue
            writer.write(data)
            await writer.drain()
        if not self.cut_off and writer.can_write_eof():
            writer.write_eof()


class FaultProxy:
    """A TCP proxy on 127.0.0.1 in front of `upstream_host:upstream_port`."""

    def __init__(
        self, upstream_port: int, upstream_host: str = "127.0.0.1", *, seed: int = 0
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.rng = random.Random(seed)
        self.settings = _Settings()
        self.stats: Counter[str] = Counter()
        self._links: set[_Link] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    # --- life cycle --------------------------------------------------------------------

    async def start(self) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the proxy first"
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    # --- switches ----------------------------------------------------------------------

    def heal(self) -> None:
        """Pass-through again; black-holed and half-open connections are reset."""
        self.settings = _Settings()
        for link in [link for link in self._links if link.cut_off]:
            link.close()

    def latency(self, ms: float, jitter_ms: float = 0.0) -> None:
        self.settings.latency_s, self.settings.jitter_s = ms / 1000, jitter_ms / 1000

    def bandwidth(self, bytes_per_s: float | None) -> None:
        self.settings.bytes_per_s = bytes_per_s

    def reset_before_request(self, count: int | None = 1, probability: float = 1.0) -> None:
        self.settings.reset = _Countdown(count, probability)

    def drop_answer(
        self, count: int | None = 1, probability: float = 1.0, match: bytes | None = None
    ) -> None:
        self.settings.drop = _Countdown(count, probability, match)

    def black_hole(self) -> None:
        self.settings.black_hole = True
        for link in list(self._links):
            link.cut(half_open=False)

    def half_open(self) -> None:
        self.settings.half_open = True
        for link in list(self._links):
            link.cut(half_open=True)

    def reset_all(self) -> int:
        """Reset every open connection now (a flapping link); returns how many."""
        links = list(self._links)
        for link in links:
            link.close()
        self.stats["reset_all"] += len(links)
        return len(links)

    # --- connections -------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        link = _Link(self, reader, writer)
        self._links.add(link)
        self.stats["connections"] += 1
        try:
            await link.run()
        except asyncio.CancelledError:
            link.close()
        finally:
            self._links.discard(link)
            self._tasks.discard(task)
