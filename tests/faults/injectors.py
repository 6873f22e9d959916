"""What the campaigns inject: killed and paused workers, network faults, server restarts.

Each injector draws every decision from the campaign's seeded generator.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from tests.faults.campaign import Campaign, Injector
from tests.faults.proxy_host import ProxyHost
from tests.faults.workload import LEASE

TTL_S = LEASE.ttl_ms / 1000


def _chance(campaign: Campaign, per_second: float) -> bool:
    return campaign.rng.random() < per_second * 0.02  # one tick


class Workers(Injector):
    """SIGKILL a random worker (`kills` per second); SIGSTOP one (`pauses` per second)
    for `pause_ttls` (low, high) times the lease."""

    def __init__(
        self, kills: float, pauses: float, pause_ttls: tuple[float, float] = (0.5, 2.5)
    ) -> None:
        self.kills, self.pauses, self.pause_ttls = kills, pauses, pause_ttls

    def tick(self, campaign: Campaign) -> None:
        slot = campaign.rng.randrange(campaign.workers)
        if _chance(campaign, self.kills):
            campaign.kill(slot)
        elif _chance(campaign, self.pauses):
            campaign.pause(slot, campaign.rng.uniform(*self.pause_ttls) * TTL_S)


NETWORK_FAULTS = (
    "reset_before_request",
    "drop_answer",
    "black_hole",
    "half_open",
    "latency_spike",
    "slow_link",
    "reset_all",
)


class Network(Injector):
    """Every worker reaches the store through a proxy of its own; `rate` faults a second.

    A latency spike lasts longer than the lease, so the worker behind it loses its
    leases while it still runs: only the fencing token stops its writes.
    """

    def __init__(self, rate: float, kinds: tuple[str, ...] = NETWORK_FAULTS) -> None:
        self.rate, self.kinds = rate, kinds
        self.host: ProxyHost | None = None
        self.until: dict[int, float] = {}
        """slot -> when its timed fault ends."""
        self.switched: Counter[str] = Counter()
        self._next: list[str] = []

    def setup(self, campaign: Campaign) -> None:
        url = urlsplit(campaign.target.url)
        upstream = (url.hostname or "127.0.0.1", url.port or _default_port(url.scheme))
        self.host = ProxyHost(upstream, campaign.workers, campaign.seed).start()

    def url_for(self, campaign: Campaign, slot: int) -> str:
        assert self.host is not None
        url = urlsplit(campaign.target.url)
        user = f"{url.username}@" if url.username else ""
        netloc = f"{user}127.0.0.1:{self.host.ports[slot]}"
        return urlunsplit(url._replace(netloc=netloc))

    def tick(self, campaign: Campaign) -> None:
        assert self.host is not None
        now = time.monotonic()
        for slot, until in list(self.until.items()):
            if now >= until:
                self.host.proxy(slot).heal()
                del self.until[slot]
        if not _chance(campaign, self.rate):
            return
        slot = campaign.rng.randrange(campaign.workers)
        if slot in self.until:
            return
        if not self._next:  # every kind once per round, in a seeded order
            self._next = list(self.kinds)
            campaign.rng.shuffle(self._next)
        kind = self._next.pop()
        self._inject(campaign, slot, kind)
        self.switched[kind] += 1
        campaign.history.record("fault", slot=slot, kind=kind)

    def _inject(self, campaign: Campaign, slot: int, kind: str) -> None:
        assert self.host is not None
        proxy, rng = self.host.proxy(slot), campaign.rng
        if kind == "reset_before_request":
            proxy.reset_before_request(count=rng.randint(1, 4))
        elif kind == "drop_answer":
            proxy.drop_answer(count=rng.randint(1, 4))
        elif kind == "reset_all":
            proxy.reset_all()
        elif kind in ("black_hole", "half_open"):
            getattr(proxy, kind)()
            self.until[slot] = time.monotonic() + rng.uniform(0.1, 0.6)
        elif kind == "latency_spike":
            proxy.latency(1.5 * LEASE.ttl_ms, jitter_ms=100)
            self.until[slot] = time.monotonic() + rng.uniform(1.5, 2.5) * TTL_S
        elif kind == "slow_link":
            proxy.latency(rng.uniform(1, 20), jitter_ms=5)
            proxy.bandwidth(rng.choice((50_000, 500_000)))
            self.until[slot] = time.monotonic() + rng.uniform(0.3, 1.0)

    def heal(self, campaign: Campaign) -> None:
        assert self.host is not None
        for slot in range(campaign.workers):
            self.host.proxy(slot).heal()
        self.until.clear()

    def injected(self) -> Counter[str]:
        """Faults that hit a connection, by kind (from the proxies' own counts)."""
        assert self.host is not None
        total: Counter[str] = Counter()
        for slot in range(self.host.count):
            stats = self.host.proxy(slot).stats()
            for kind in (
                "reset_before_request",
                "drop_answer",
                "black_holed",
                "half_opened",
                "reset_all",
            ):
                total[kind] += stats[kind]
            total["connections"] += stats["connections"]
        return total

    def teardown(self, campaign: Campaign) -> None:
        if self.host is not None:
            campaign.tally.update({f"net_{k}": v for k, v in self.injected().items()})
            campaign.tally.update({f"switch_{k}": v for k, v in self.switched.items()})
            self.host.stop()


def _default_port(scheme: str) -> int:
    return 5432 if scheme.startswith("postgres") else 6379


class Restarts(Injector):
    """Restart the store's server (`restart()` blocks until it answers) every `every_s`."""

    def __init__(self, restart: Callable[[], None], every_s: tuple[float, float]) -> None:
        self.restart, self.every_s = restart, every_s
        self.next_at = 0.0

    def setup(self, campaign: Campaign) -> None:
        self.next_at = time.monotonic() + campaign.rng.uniform(*self.every_s)

    def tick(self, campaign: Campaign) -> None:
        if time.monotonic() < self.next_at:
            return
        campaign.history.record("restart", phase="begin")
        self.restart()
        campaign.history.record("restart", phase="end")
        campaign.tally["restarts"] += 1
        self.next_at = time.monotonic() + campaign.rng.uniform(*self.every_s)


class Both(Injector):
    """Several injectors at once."""

    def __init__(self, *parts: Injector) -> None:
        self.parts = parts

    def setup(self, campaign: Campaign) -> None:
        for part in self.parts:
            part.setup(campaign)

    def url_for(self, campaign: Campaign, slot: int) -> str:
        urls = {part.url_for(campaign, slot) for part in self.parts} - {campaign.target.url}
        return urls.pop() if urls else campaign.target.url

    def tick(self, campaign: Campaign) -> None:
        for part in self.parts:
            part.tick(campaign)

    def heal(self, campaign: Campaign) -> None:
        for part in self.parts:
            part.heal(campaign)

    def teardown(self, campaign: Campaign) -> None:
        for part in self.parts:
            part.teardown(campaign)
