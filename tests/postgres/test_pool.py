"""The pool (issue 14, item 3): concurrency beyond it waits for a connection, the wait
is bounded by a timeout whose error names the option to raise, and the sizing options
are honoured, given as arguments or in the URL."""

from __future__ import annotations

import asyncio

import pytest

from ranvier import Axon, CompletionState, InvalidInput, StoreUnavailable, open_store
from ranvier.stores.postgres import PostgresPersistenceStore
from tests.adapters.postgres import fresh_prefix
from tests.contract.helpers import envelope, new_trace_id
from tests.servers import POSTGRES_URL


async def test_a_thousand_concurrent_appends_on_four_connections_all_succeed(
    pg_store: PostgresPersistenceStore,
) -> None:
    assert pg_store.pool.get_max_size() == 4
    tids = [new_trace_id() for _ in range(1000)]
    await asyncio.gather(*(pg_store.append(envelope(t, 0)) for t in tids))
    await asyncio.gather(*(pg_store.append(envelope(t, 1)) for t in tids))
    traces = await pg_store.load_many(tids)
    assert len(traces) == 1000
    assert all([e.step for e in t.events] == [0, 1] for t in traces)


async def test_a_thousand_concurrent_runs_on_four_connections_all_succeed(
    pg_store: PostgresPersistenceStore,
) -> None:
    """Each run takes a lease, appends three checkpoints, completes and releases: beyond
    the four connections they wait their turn, none fails."""

    def double(value: int, ctx: object) -> int:
        return value * 2

    async def bump(value: int, ctx: object) -> int:
        await asyncio.sleep(0)
        return value + 1

    axon = Axon("pool-check", version="1").then(double).then(bump).then(double, "again")
    results = await asyncio.gather(
        *(axon.run(n, store=pg_store, trace_id=f"run-{n:04d}") for n in range(1000))
    )
    assert [r.value for r in results] == [(n * 2 + 1) * 2 for n in range(1000)]
    assert all(r.completion is CompletionState.SUCCESS for r in results)
    counts = await pg_store.count_traces_by_status()
    assert counts["succeeded"] == 1000


async def test_an_exhausted_pool_names_the_option_to_raise() -> None:
    store = await PostgresPersistenceStore.connect(
        POSTGRES_URL,
        table_prefix=fresh_prefix(),
        min_connections=0,
        max_connections=1,
        acquire_timeout=0.2,
    )
    try:
        await store.ensure_schema()
        async with store.pool.acquire():  # the only connection is busy
            with pytest.raises(StoreUnavailable, match="max_connections=1") as caught:
                await store.load("anything")
            assert "acquire_timeout=0.2" in str(caught.value)
            with pytest.raises(StoreUnavailable, match="max_connections"):
                await store.ensure_schema()  # the schema's own checkout says the same
        await store.append(envelope(new_trace_id(), 0))  # usable again
    finally:
        await store.drop_schema()
        await store.close()


@pytest.mark.parametrize("via", ["arguments", "url"])
async def test_pool_sizes_are_honoured(via: str) -> None:
    prefix = fresh_prefix()
    if via == "arguments":
        store = await open_store(
            POSTGRES_URL, ensure_schema=False, min_connections=2, max_connections=7
        )
    else:
        sep = "&" if "?" in POSTGRES_URL else "?"
        url = f"{POSTGRES_URL}{sep}min_connections=2&max_connections=7&table_prefix={prefix}"
        store = await open_store(url, ensure_schema=False)
    try:
        assert isinstance(store, PostgresPersistenceStore)
        assert (store.pool.get_min_size(), store.pool.get_max_size()) == (2, 7)
        settings = (await store.describe()).settings
        assert (settings["pool_min"], settings["pool_max"]) == (2, 7)
        if via == "url":
            assert store.table_prefix == prefix
    finally:
        await store.close()


async def test_url_options_are_checked_and_arguments_win() -> None:
    sep = "&" if "?" in POSTGRES_URL else "?"
    with pytest.raises(InvalidInput, match="table_prefix"):
        await PostgresPersistenceStore.connect(f"{POSTGRES_URL}{sep}prefix=x")
    with pytest.raises(InvalidInput, match="max_connections"):
        await PostgresPersistenceStore.connect(f"{POSTGRES_URL}{sep}max_connections=many")
    with pytest.raises(InvalidInput, match="table prefix"):
        await PostgresPersistenceStore.connect(f"{POSTGRES_URL}{sep}table_prefix=Bad-Name")
    with pytest.raises(InvalidInput, match="no_such_setting"):
        await PostgresPersistenceStore.connect(
            f"{POSTGRES_URL}{sep}no_such_setting=1", min_connections=1
        )
    store = await PostgresPersistenceStore.connect(
        f"{POSTGRES_URL}{sep}max_connections=9&application_name=ranvier-test",
        max_connections=3,
        min_connections=1,
    )
    try:
        assert store.pool.get_max_size() == 3
        async with store.pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") == "ranvier-test"
    finally:
        await store.close()


async def test_min_connections_above_max_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="min_connections"):
        await PostgresPersistenceStore.connect(POSTGRES_URL, min_connections=5, max_connections=2)
