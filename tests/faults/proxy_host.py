"""Fault proxies in a process of their own, switched from a synchronous campaign.

The campaign process forks workers, so it runs no event loop and no thread of its
own; the proxies live in a forked child and take their orders over a pipe:
`host.proxy(i).latency(1200)` calls `FaultProxy.latency` in the child and waits for it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import traceback
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.faults.proxy import FaultProxy

CONTEXT = multiprocessing.get_context("fork")


class RemoteProxy:
    def __init__(self, host: ProxyHost, index: int) -> None:
        self._host, self._index = host, index

    @property
    def port(self) -> int:
        return self._host.ports[self._index]

    def stats(self) -> Counter[str]:
        return Counter(self._host.call(self._index, "stats"))

    def __getattr__(self, method: str) -> Callable[..., Any]:
        return lambda *args, **kwargs: self._host.call(self._index, method, *args, **kwargs)


class ProxyHost:
    """`count` proxies to `upstream` (host, port), each seeded from `seed`."""

    def __init__(self, upstream: tuple[str, int], count: int, seed: int) -> None:
        self.upstream, self.count, self.seed = upstream, count, seed
        self.ports: list[int] = []
        self._conn: Any = None
        self._process: Any = None

    def start(self) -> ProxyHost:
        parent, child = CONTEXT.Pipe()
        self._process = CONTEXT.Process(target=_serve_main, args=(child, self), name="proxies")
        self._process.start()
        child.close()
        self._conn = parent
        if not parent.poll(30):
            raise RuntimeError("the proxy process did not start")
        self.ports = parent.recv()
        return self

    def proxy(self, index: int) -> RemoteProxy:
        return RemoteProxy(self, index)

    def call(self, index: int, method: str, *args: Any, **kwargs: Any) -> Any:
        self._conn.send((index, method, args, kwargs))
        if not self._conn.poll(30):
            raise RuntimeError(f"the proxy process did not answer {method}")
        status, value = self._conn.recv()
        if status != "ok":
            raise RuntimeError(f"proxy {index}.{method} failed in the proxy process: {value}")
        return value

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            self._conn.send(None)
            self._process.join(10)
        finally:
            if self._process.exitcode is None:
                self._process.kill()
                self._process.join()
            self._conn.close()
            self._process = None


def _serve_main(conn: Any, host: ProxyHost) -> None:
    try:
        asyncio.run(_serve(conn, host))
    except BaseException:
        traceback.print_exc()
        os._exit(3)
    os._exit(0)


async def _serve(conn: Any, host: ProxyHost) -> None:
    upstream_host, upstream_port = host.upstream
    proxies = [
        await FaultProxy(upstream_port, upstream_host, seed=host.seed + i).start()
        for i in range(host.count)
    ]
    conn.send([p.port for p in proxies])
    done = asyncio.Event()

    def on_order() -> None:
        try:
            order = conn.recv()
        except EOFError:
            order = None
        if order is None:
            done.set()
            return
        index, method, args, kwargs = order
        try:
            proxy = proxies[index]
            value = (
                dict(proxy.stats) if method == "stats" else getattr(proxy, method)(*args, **kwargs)
            )
            conn.send(("ok", value))
        except Exception as exc:
            conn.send(("error", repr(exc)))

    asyncio.get_running_loop().add_reader(conn.fileno(), on_order)
    await done.wait()
    for proxy in proxies:
        await proxy.close()
