"""A tiny TCP proxy in front of a test redis-server that can lose one reply.

`cut_next_reply()`: the next bytes the server sends are dropped and the client's
connection is closed: the server did the write, the client cannot know (the runbook's
"network partition" scenario, without iptables).
"""

from __future__ import annotations

import asyncio
import contextlib


class CuttingProxy:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.cuts = 0
        self._cut = False
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cut_next_reply(self) -> None:
        self._cut = True

    async def __aenter__(self) -> CuttingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        try:
            await asyncio.gather(
                self._pipe(client_r, server_w, replies=False),
                self._pipe(server_r, client_w, replies=True),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for writer in (client_w, server_w):
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, replies: bool
    ) -> None:
        while data := await reader.read(65536):
            if replies and self._cut:
                self._cut = False
                self.cuts += 1
                raise ConnectionResetError("reply dropped by the test proxy")
            writer.write(data)
            await writer.drain()
        writer.close()
