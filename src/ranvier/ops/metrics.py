"""Prometheus: the runtime's metrics plus traces by status, read from the store on scrape.

The HTTP server of prometheus_client scrapes in its own thread; the store lives on an
event loop in a background thread, and each scrape runs one count there.
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import threading
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from ranvier import rules
from ranvier.errors import RanvierError
from ranvier.ops.stores import open_with_defaults
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import open_store, resolve_store_url

SCRAPE_TIMEOUT_S = 10.0
_T = TypeVar("_T")


async def count_by_status(store: PersistenceStore) -> dict[str, int]:
    """Traces per status (running, interrupted, succeeded, ...), zero included, counted
    by the store in one query (a scrape never walks the traces)."""
    counts = await store.count_traces_by_status()
    return {status.value: counts.get(status, 0) for status in rules.COUNTED_STATUSES}


class StoreThread:
    """A store on its own event loop thread, callable from any thread."""

    def __init__(self, url: str | None, *, options: dict[str, Any] | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        # a scrape only reads: it creates nothing where there is no schema yet
        opening = (
            open_with_defaults(url, ensure_schema=False)
            if options is None
            else open_store(resolve_store_url(url), ensure_schema=False, **options)
        )
        try:
            self.store: PersistenceStore = self.call(opening)
        except BaseException:
            self._stop()
            raise

    def call(self, coro: Coroutine[Any, Any, _T], timeout: float = SCRAPE_TIMEOUT_S) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        try:
            self.call(self.store.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()


class TraceStatusCollector:
    """`ranvier_traces{status=...}` and `ranvier_store_up`, computed on every scrape."""

    def __init__(self, runner: StoreThread) -> None:
        self._runner = runner

    def describe(self) -> list[Metric]:
        return []  # no scrape at registration time

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("ranvier_store_up", "1 if the last scrape reached the store")
        try:
            counts = self._runner.call(count_by_status(self._runner.store))
        except (RanvierError, TimeoutError):
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        traces = GaugeMetricFamily(
            "ranvier_traces", "Traces in the store by status", labels=["status"]
        )
        for status, count in counts.items():
            traces.add_metric([status], count)
        yield traces


def register(url: str | None, registry: CollectorRegistry = REGISTRY) -> StoreThread:
    """Add the traces-by-status gauge (and the runtime's metrics, if loaded) to `registry`."""
    if importlib.util.find_spec("ranvier.metrics") is not None:
        # the runtime's counters and histograms register themselves on import
        importlib.import_module("ranvier.metrics")
    runner = StoreThread(url)
    registry.register(TraceStatusCollector(runner))
    return runner
