"""The fault proxy, one mode at a time, in front of a tiny echo server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from tests.faults.proxy import FaultProxy

SILENCE = 0.3
"""How long a read waits to call a connection silent."""


@dataclass
class Echo:
    """Echoes every chunk; remembers what it received and which connections it saw end."""

    received: bytearray = field(default_factory=bytearray)
    ended: int = 0
    server: asyncio.Server | None = None

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                self.received += data
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self.ended += 1
            writer.close()

    @property
    def port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port


@pytest.fixture
async def echo() -> AsyncIterator[Echo]:
    server = Echo()
    server.server = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    yield server
    server.server.close()


@pytest.fixture
async def proxy(echo: Echo) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(echo.port, seed=7) as started:
        yield started


async def _open(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _ask(writer: asyncio.StreamWriter, reader: asyncio.StreamReader, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 5)


async def _eventually(check: object, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition never held"
        await asyncio.sleep(0.01)


async def _is_reset(reader: asyncio.StreamReader) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(100), 5)
    except ConnectionResetError:
        return True
    return data == b""  # the reset can surface as an end of stream


async def _is_silent(reader: asyncio.StreamReader) -> bool:
    try:
        await asyncio.wait_for(reader.read(100), SILENCE)
    except TimeoutError:
        return True
    return False


async def test_passes_bytes_through_both_ways(proxy: FaultProxy, echo: Echo) -> None:
    reader, writer = await _open(proxy)
    assert await _ask(writer, reader, b"ping") == b"ping"
    assert await _ask(writer, reader, b"x" * 200_000) == b"x" * 200_000
    writer.close()
    assert proxy.stats["connections"] == 1


async def test_latency_delays_each_way_and_jitter_keeps_the_order(proxy: FaultProxy) -> None:
    reader, writer = await _open(proxy)
    proxy.latency(100)
    started = time.monotonic()
    assert await _ask(writer, reader, b"a") == b"a"
    assert time.monotonic() - started >= 0.2  # there and back
    proxy.latency(20, jitter_ms=20)
    numbers = b"".join(b"%04d" % i for i in range(200))
    for i in range(200):
        writer.write(b"%04d" % i)
        await writer.drain()
        await asyncio.sleep(0)
    assert await asyncio.wait_for(reader.readexactly(len(numbers)), 10) == numbers
    proxy.latency(0)
    started = time.monotonic()
    await _ask(writer, reader, b"b")
    assert time.monotonic() - started < 0.1
    writer.close()


async def test_bandwidth_limits_the_throughput(proxy: FaultProxy) -> None:
    reader, writer = await _open(proxy)
    proxy.bandwidth(1_000_000)
    started = time.monotonic()
    await _ask(writer, reader, b"y" * 150_000)
    assert time.monotonic() - started >= 0.14  # 150 kB at 1 MB/s (the ways overlap)
    proxy.bandwidth(None)
    writer.close()


async def test_reset_before_request_never_reaches_the_server(proxy: FaultProxy, echo: Echo) -> None:
    reader, writer = await _open(proxy)
    assert await _ask(writer, reader, b"one") == b"one"
    proxy.reset_before_request(count=1)
    writer.write(b"two")
    assert await _is_reset(reader)
    await _eventually(lambda: echo.ended == 1)
    assert bytes(echo.received) == b"one"  # "two" never arrived
    assert proxy.stats["reset_before_request"] == 1
    reader, writer = await _open(proxy)  # the count is spent: the next one passes
    assert await _ask(writer, reader, b"three") == b"three"
    writer.close()


async def test_drop_answer_after_the_server_ran_the_request(proxy: FaultProxy, echo: Echo) -> None:
    reader, writer = await _open(proxy)
    proxy.drop_answer(count=1)
    writer.write(b"done-but-unknown")
    assert await _is_reset(reader)
    assert bytes(echo.received) == b"done-but-unknown"  # the server did it
    assert proxy.stats["drop_answer"] == 1


async def test_drop_answer_can_wait_for_a_matching_answer(proxy: FaultProxy, echo: Echo) -> None:
    reader, writer = await _open(proxy)
    proxy.drop_answer(count=1, match=b"COMMIT")
    assert await _ask(writer, reader, b"BEGIN") == b"BEGIN"
    assert await _ask(writer, reader, b"INSERT") == b"INSERT"
    writer.write(b"COMMIT")
    assert await _is_reset(reader)
    assert bytes(echo.received) == b"BEGININSERTCOMMIT"


async def test_probabilities_decide_with_the_seeded_generator(proxy: FaultProxy) -> None:
    proxy.reset_before_request(count=None, probability=0.5)
    outcomes = []
    for _ in range(30):
        reader, writer = await _open(proxy)
        writer.write(b"?")
        outcomes.append(await _is_reset(reader))
        writer.close()
    assert 0 < sum(outcomes) < 30
    assert proxy.stats["reset_before_request"] == sum(outcomes)


async def test_black_hole_accepts_and_never_answers_until_healed(
    proxy: FaultProxy, echo: Echo
) -> None:
    old_r, old_w = await _open(proxy)
    assert await _ask(old_w, old_r, b"before") == b"before"
    proxy.black_hole()
    new_r, new_w = await _open(proxy)  # accepted
    for reader, writer in ((old_r, old_w), (new_r, new_w)):
        writer.write(b"lost")
        await writer.drain()
        assert await _is_silent(reader)
    assert bytes(echo.received) == b"before"
    proxy.heal()  # what they carried is gone: both are reset
    assert await _is_reset(old_r) and await _is_reset(new_r)
    reader, writer = await _open(proxy)
    assert await _ask(writer, reader, b"after") == b"after"
    assert proxy.stats["black_holed"] == 2
    writer.close()


async def test_half_open_closes_the_server_side_and_leaves_the_client_hanging(
    proxy: FaultProxy, echo: Echo
) -> None:
    reader, writer = await _open(proxy)
    assert await _ask(writer, reader, b"hi") == b"hi"
    proxy.half_open()
    await _eventually(lambda: echo.ended == 1)  # the server saw its client leave
    writer.write(b"into the void")
    await writer.drain()  # the client's writes still succeed
    assert await _is_silent(reader)  # ... and its reads hang: no FIN, no reset
    assert proxy.stats["half_opened"] == 1
    proxy.heal()
    assert await _is_reset(reader)


async def test_reset_all_cuts_every_open_connection(proxy: FaultProxy) -> None:
    links = [await _open(proxy) for _ in range(3)]
    for reader, writer in links:
        await _ask(writer, reader, b".")
    assert proxy.reset_all() == 3
    for reader, _ in links:
        assert await _is_reset(reader)


async def test_an_upstream_that_is_down_resets_the_client(echo: Echo) -> None:
    assert echo.server is not None
    port = echo.port
    echo.server.close()
    await echo.server.wait_closed()
    async with FaultProxy(port) as proxy:
        reader, _ = await _open(proxy)
        assert await _is_reset(reader)
        assert proxy.stats["upstream_refused"] == 1
