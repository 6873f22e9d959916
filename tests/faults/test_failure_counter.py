"""Guarantee 6, counted exactly: each connection cut before commit that a checkpoint
meets is one `ranvier_checkpoint_failures_total`, no more, no less.

One run at a time through the fault proxy to PostgreSQL without SSL (asyncpg then
never re-sends by itself, so a cut is one failed attempt); the step arms the proxy so
the cuts land on its own checkpoint and the reconnections of its retries. On Redis the
client re-sends a cut script once (the write is idempotent), so a single cut costs no
failure at all: the campaigns count failures there.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from ranvier import (
    Axon,
    CheckpointPolicy,
    CompletionState,
    LeaseSettings,
    OutcomeKind,
    RetryPolicy,
    RunStatus,
    StepContext,
)
from ranvier.stores.postgres import PostgresPersistenceStore
from tests.adapters.postgres import fresh_prefix
from tests.faults.proxy import FaultProxy
from tests.faults.workload import checkpoint_failures
from tests.servers import POSTGRES_URL

QUIET_LEASE = LeaseSettings(ttl_ms=60_000, renew_every_ms=30_000)
"""No renewal during a run: the proxy's cuts land on checkpoints only."""
ATTEMPTS = 3


@pytest.fixture
async def proxied() -> AsyncIterator[tuple[FaultProxy, PostgresPersistenceStore]]:
    url = urlsplit(POSTGRES_URL)
    async with FaultProxy(url.port or 5432, url.hostname or "127.0.0.1") as proxy:
        # without SSL: asyncpg's `prefer` retries a cut SSL handshake in plain text itself
        through = POSTGRES_URL.replace(url.netloc, f"{url.username}@{proxy.address}")
        through += ("&" if "?" in through else "?") + "sslmode=disable"
        store = await PostgresPersistenceStore.connect(
            # no warm connection to restore in the background: every cut meets a checkpoint
            through,
            table_prefix=fresh_prefix(),
            min_connections=0,
            max_connections=1,
        )
        try:
            await store.ensure_schema()
            yield proxy, store
        finally:
            proxy.heal()
            await store.drop_schema()
            await store.close()


def _pipeline(circuit: str, proxy: FaultProxy, cuts: int) -> Axon:
    def first(value: Any, ctx: StepContext) -> Any:
        return value

    def cut_my_checkpoint(value: Any, ctx: StepContext) -> Any:
        proxy.reset_before_request(count=cuts)
        return value

    def last(value: Any, ctx: StepContext) -> Any:
        return value

    policy = CheckpointPolicy(retry=RetryPolicy(attempts=ATTEMPTS, base_delay_s=0.01))
    axon = Axon(circuit, lease=QUIET_LEASE, checkpoint=policy)
    return axon.then(first).then(cut_my_checkpoint).then(last)


@pytest.mark.parametrize("cuts", [1, 2, ATTEMPTS])
async def test_each_cut_a_checkpoint_meets_is_counted_once(
    proxied: tuple[FaultProxy, PostgresPersistenceStore], cuts: int
) -> None:
    proxy, store = proxied
    circuit = f"counter-{uuid.uuid4().hex[:8]}"
    result = await _pipeline(circuit, proxy, cuts).run({"v": 1}, store=store)
    assert proxy.stats["reset_before_request"] == cuts
    assert checkpoint_failures(circuit, "postgres") == cuts
    trace = await store.load(result.trace_id)
    assert trace is not None
    if cuts < ATTEMPTS:  # a retry got through: the run went on
        assert result.completion is CompletionState.SUCCESS
        assert [e.node_id for e in trace.events] == ["first", "cut_my_checkpoint", "last"]
    else:  # every attempt was cut: the run halted with the fault recorded
        assert result.status is RunStatus.COMPLETED
        assert result.completion is CompletionState.FAULT
        assert trace.events[-1].outcome_kind is OutcomeKind.FAULT
        assert trace.events[-1].payload["kind"] == "persistence_unavailable"
