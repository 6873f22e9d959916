"""Every campaign, on every store it applies to: what the CI tier and `make soak` run.

`Entry.run(seed, seconds, tmp, scale)` sets the store up, runs the campaign (its fault
rates times `scale`) and returns the checker's verdict; `Entry.misses(counts)` says what
the run failed to exercise (a campaign that injected nothing proved nothing).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.adapters.redis import drop_prefix
from tests.crash.targets import Target
from tests.faults import exhaustion, skew, targets
from tests.faults.campaign import Campaign, Injector, summary
from tests.faults.checker import Verdict
from tests.faults.history import read_all
from tests.faults.injectors import Both, Network, Restarts, Workers
from tests.redis.servers import shared_cluster

Need = tuple[str, int]
"""(count name, its minimum): what a run must have done to prove anything."""


@dataclass(frozen=True)
class Entry:
    campaign: str
    store: str
    run: Callable[[int, float, Path, float], Verdict]
    needs: tuple[Need, ...] = ()
    soak_weight: float = 1.0
    """The soak gives this campaign this many times the fault phase of the others."""

    @property
    def id(self) -> str:
        return f"{self.campaign}-{self.store}"

    def misses(self, counts: Counter[str]) -> list[str]:
        return [
            f"{name} {counts[name]} < {least}" for name, least in self.needs if counts[name] < least
        ]


@contextmanager
def store_target(store: str, tmp: Path) -> Iterator[Target]:
    if store != "redis-cluster":
        with targets.shared(store, tmp) as target:
            yield target
        return
    url, prefix = shared_cluster().url, f"ranvier:faults{uuid.uuid4().hex[:8]}"
    try:
        yield Target("redis-cluster", url, {"prefix": prefix})
    finally:
        asyncio.run(drop_prefix(url, prefix))


def _campaign(
    name: str,
    target: Target,
    injector: Injector,
    seed: int,
    seconds: float,
    tmp: Path,
    *,
    step_pause_s: float = 0.004,
    skews_ms: tuple[int, ...] = (0,),
) -> tuple[Campaign, Verdict]:
    campaign = Campaign(
        name,
        target,
        injector,
        seed,
        seconds,
        tmp / "run",
        skews_ms=skews_ms,
        step_pause_s=step_pause_s,
    )
    started = time.perf_counter()
    verdict = campaign.run()
    print(summary(campaign, verdict, time.perf_counter() - started))
    return campaign, verdict


def kill(store: str) -> Entry:
    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        with store_target(store, tmp) as target:
            injector = Workers(kills=4 * scale, pauses=scale)
            return _campaign("kill", target, injector, seed, seconds, tmp, step_pause_s=0.02)[1]

    return Entry("kill", store, run, (("kills", 1), ("traces", 20)))


def stall(store: str) -> Entry:
    """A worker stalled past its lease: paused (SQLite) or behind a latency spike."""

    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        injector: Injector = (
            Workers(kills=0, pauses=2 * scale, pause_ttls=(1.5, 3))
            if store == "sqlite"
            else Network(2 * scale, ("latency_spike",))
        )
        with store_target(store, tmp) as target:  # slow steps: many runs in flight
            return _campaign("stall", target, injector, seed, seconds, tmp, step_pause_s=0.05)[1]

    return Entry("stall", store, run, (("lease_lost_seen", 1),))


def network(store: str) -> Entry:
    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        with store_target(store, tmp) as target:
            return _campaign("network", target, Network(10 * scale), seed, seconds, tmp)[1]

    # a cut may meet a renewal or a listing rather than a checkpoint: no failure required
    needs: tuple[Need, ...] = (("net_reset_before_request", 1), ("net_drop_answer", 1))
    return Entry("network", store, run, needs, soak_weight=6)  # most connection faults


def restart(store: str) -> Entry:
    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        if store == "postgres":
            with targets.restartable_postgres() as (target, pg):
                injector = Restarts(
                    lambda: targets.restart_postgres(pg), (0.8 / scale, 1.6 / scale)
                )
                return _campaign("restart", target, injector, seed, seconds, tmp)[1]
        with targets.aof_redis() as (target, redis):
            injector = Restarts(lambda: targets.restart_redis(redis), (0.5 / scale, 1.2 / scale))
            both = Both(injector, Workers(kills=scale, pauses=0))
            return _campaign("restart", target, both, seed, seconds, tmp)[1]

    return Entry("restart", store, run, (("restarts", 1), ("acks_checked", 1)))


def clock_skew(store: str) -> Entry:
    """Workers an hour ahead and an hour behind, nothing else wrong: no lease is ever
    lost or taken over, and the retention cutoff is the store's."""

    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        skews = (skew.HOUR_MS, -skew.HOUR_MS)
        with store_target(store, tmp) as target:
            campaign, verdict = _campaign(
                "skew", target, Injector(), seed, seconds, tmp, skews_ms=skews
            )
            verdict.anomalies += _skew_anomalies(campaign, verdict)
            verdict.anomalies += skew.probe_leases(target, tmp)
            completed = (
                verdict.counts["completed_success"] + verdict.counts["completed_compensated"]
            )
            verdict.anomalies += skew.probe_retention(target, tmp, completed)
        return verdict

    return Entry("skew", store, run, (("traces", 20),))


def _skew_anomalies(campaign: Campaign, verdict: Verdict) -> list[str]:
    problems = []
    clocks = {
        round(x["local_minus_store"] / skew.HOUR_MS)
        for x in read_all(campaign.run_dir)
        if x["op"] == "clock"
    }
    if not {1, -1} <= clocks:
        problems.append(f"the workers' clocks were not an hour off the store's: {clocks}")
    for name in ("lease_lost_seen", "reruns"):
        if verdict.counts[name]:
            problems.append(
                f"clocks an hour apart and no other fault, yet {name} = {verdict.counts[name]}"
            )
    return problems


def disk_full() -> Entry:
    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        return asyncio.run(exhaustion.disk_full(seed, 150, tmp))

    return Entry("disk_full", "sqlite", run, (("disk_full_errors", 1),))


def maxmemory() -> Entry:
    def run(seed: int, seconds: float, tmp: Path, scale: float = 1.0) -> Verdict:
        return asyncio.run(exhaustion.maxmemory(seed, 150, tmp))

    return Entry("maxmemory", "redis", run, (("maxmemory_errors", 1),))


CATALOG = (
    kill("sqlite"),
    kill("postgres"),
    kill("redis"),
    kill("redis-cluster"),
    stall("sqlite"),
    stall("postgres"),
    stall("redis"),
    network("postgres"),
    network("redis"),
    restart("postgres"),
    restart("redis"),
    clock_skew("postgres"),
    clock_skew("redis"),
    disk_full(),
    maxmemory(),
)
