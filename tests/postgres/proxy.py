"""A small TCP proxy (in the style of Toxiproxy) to lose a server's answers on purpose.

With `swallow_responses` set, what the client sends still reaches the server, but the
server's answer is dropped and the client's connection is cut: the request ran, and
the client cannot know whether it did (an unknown outcome).
"""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.swallow_responses = False
        self.cuts = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        up = asyncio.create_task(self._pipe(reader, up_writer, upstream=True))
        down = asyncio.create_task(self._pipe(up_reader, writer, upstream=False))
        self._tasks.update((up, down))
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        for task in (up, down):
            task.cancel()
        for w in (writer, up_writer):
            w.close()
            with contextlib.suppress(OSError):
                await w.wait_closed()
        self._tasks.difference_update((up, down))

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        while data := await reader.read(65536):
            if not upstream and self.swallow_responses:
                self.cuts += 1
                return  # drop the answer; closing both sides tells the client nothing
            writer.write(data)
            await writer.drain()
