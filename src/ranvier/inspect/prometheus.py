"""`/metrics`: the Prometheus text `ranvier metrics serve` gives, from this server.

The same families: the runtime's counters and histograms (the default registry, as
`ranvier metrics serve` exposes it), `ranvier_store_up` and `ranvier_traces{status}`
counted with `ranvier.ops.metrics.count_by_status`, on this server's event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, CollectorRegistry

from ranvier.errors import RanvierError
from ranvier.inspect.state import Inspector
from ranvier.ops.metrics import count_by_status

__all__ = ["CONTENT_TYPE_LATEST", "metrics_text"]


class _Families:
    """A collector yielding families computed before the scrape."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def families(counts: Mapping[str, int] | None) -> list[Metric]:
    """`ranvier_store_up` and, when the store answered, `ranvier_traces{status}`."""
    up = GaugeMetricFamily("ranvier_store_up", "1 if the last scrape reached the store")
    up.add_metric([], 0 if counts is None else 1)
    if counts is None:
        return [up]
    traces = GaugeMetricFamily("ranvier_traces", "Traces in the store by status", labels=["status"])
    for status, count in counts.items():
        traces.add_metric([status], count)
    return [up, traces]


async def metrics_text(inspector: Inspector) -> bytes:
    """The runtime's metrics, then the store's: counted now, never from the page cache."""
    try:
        counts: Mapping[str, int] | None = await count_by_status(inspector.store)
    except (RanvierError, TimeoutError):
        counts = None
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(families(counts)))
    data: bytes = generate_latest(REGISTRY) + generate_latest(registry)
    return data
