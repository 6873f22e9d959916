"""What every store offers besides the trace rules: clock, schema, lifecycle, protocols."""

from __future__ import annotations

import asyncio
import time

from ranvier.stores.base import (
    CompensationIdempotencyStore,
    PersistenceStore,
    StoreCapabilities,
)
from tests.adapters import Opener
from tests.contract.helpers import envelope, must_load, new_trace, new_trace_id


async def test_store_satisfies_the_protocols(store: PersistenceStore) -> None:
    assert isinstance(store, PersistenceStore)
    assert isinstance(store.compensations, CompensationIdempotencyStore)
    assert isinstance(store.capabilities, StoreCapabilities)
    assert store.adapter in {"memory", "sqlite", "postgres", "redis"}


async def test_now_ms_is_a_plausible_unix_time(store: PersistenceStore) -> None:
    first = await store.now_ms()
    assert isinstance(first, int)
    assert abs(first - time.time() * 1000) < 60_000
    await asyncio.sleep(0.01)
    assert await store.now_ms() >= first


async def test_ensure_schema_is_idempotent_and_safe_concurrently(
    store: PersistenceStore,
) -> None:
    tid = await new_trace(store, steps=2)
    await store.ensure_schema()
    await asyncio.gather(*(store.ensure_schema() for _ in range(5)))
    assert len((await must_load(store, tid)).events) == 2
    await store.append(envelope(tid, 2))


async def test_a_store_is_an_async_context_manager_that_closes(
    store: PersistenceStore, store_opener: Opener
) -> None:
    tid = new_trace_id()
    async with await store_opener() as opened:
        assert isinstance(opened, PersistenceStore)
        await opened.append(envelope(tid, 0))
    if store.capabilities.multi_process or opened is store:
        assert len((await must_load(store, tid)).events) == 1
