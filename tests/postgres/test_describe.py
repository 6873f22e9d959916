"""`describe()` and read-only opening (issue 14, item 5): a store opened without
`ensure_schema` creates nothing, says it has no schema, and reads fail with
`SchemaMissing` instead of creating tables or listing an empty store."""

from __future__ import annotations

import asyncpg
import pytest

from ranvier import SchemaMissing, open_store
from ranvier.stores.postgres import PostgresPersistenceStore
from ranvier.stores.postgres.connection import SERVER_SETTINGS, keep_session
from ranvier.stores.postgres.schema import LATEST_VERSION
from ranvier.stores.postgres.sql import table_names
from tests.adapters.postgres import fresh_prefix
from tests.servers import POSTGRES_URL


async def _tables_of(store: PostgresPersistenceStore) -> list[str]:
    async with store.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT relname::text FROM pg_class WHERE starts_with(relname, $1)",
            f"{store.table_prefix}_",
        )
    return [r[0] for r in rows]


async def test_opening_without_ensure_schema_creates_nothing_and_reads_say_so() -> None:
    store = await open_store(POSTGRES_URL, ensure_schema=False, table_prefix=fresh_prefix())
    assert isinstance(store, PostgresPersistenceStore)
    try:
        described = await store.describe()
        assert described.schema_version is None
        assert described.latest_schema_version == LATEST_VERSION
        assert described.objects == tuple(table_names(store.table_prefix).values())
        with pytest.raises(SchemaMissing, match="ranvier schema ensure"):
            await store.list_traces()
        with pytest.raises(SchemaMissing):
            await store.load("t")
        with pytest.raises(SchemaMissing):
            await store.count_traces_by_status()
        assert await _tables_of(store) == []
    finally:
        await store.close()


@pytest.mark.parametrize("partitions", [None, 4])
async def test_describe_reports_the_schema_and_what_doctor_judges(
    partitions: int | None,
) -> None:
    url = POSTGRES_URL.replace("://postgres@", "://postgres:s3cret@")  # trust ignores it
    store = await PostgresPersistenceStore.connect(
        url,
        table_prefix=fresh_prefix(),
        partitions=partitions,
        min_connections=1,
        max_connections=3,
    )
    try:
        await store.ensure_schema()
        described = await store.describe()
        assert described.adapter == "postgres"
        assert described.schema_version == LATEST_VERSION == described.latest_schema_version
        if "s3cret" in url:
            assert "s3cret" not in described.location and ":***@" in described.location
        settings = described.settings
        assert settings["synchronous_commit"] in {
            "on",
            "off",
            "local",
            "remote_write",
            "remote_apply",
        }
        assert isinstance(settings["max_connections"], int) and settings["max_connections"] > 0
        assert (settings["pool_min"], settings["pool_max"]) == (1, 3)
        assert settings["partitions"] == partitions
    finally:
        await store.drop_schema()
        await store.close()


async def test_a_store_around_a_pool_of_its_own_says_where_it_is() -> None:
    pool = await asyncpg.create_pool(
        POSTGRES_URL, min_size=0, max_size=2, server_settings=SERVER_SETTINGS, reset=keep_session
    )
    try:
        store = PostgresPersistenceStore(pool, table_prefix=fresh_prefix())
        described = await store.describe()
        await store.close()
        user = POSTGRES_URL.partition("://")[2].partition("@")[0].partition(":")[0]
        database = POSTGRES_URL.rpartition("/")[2].partition("?")[0]
        assert described.location.startswith(f"postgresql://{user}@")
        assert described.location.endswith(f"/{database}")
        assert described.schema_version is None
    finally:
        await pool.close()
