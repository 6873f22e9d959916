"""What a new user gets wrong, told in one line that names the fix (issue 14, item 7): a
missing database, an unknown user, a table of the prefix made by hand."""

from __future__ import annotations

import pytest

from ranvier import InvalidInput, SchemaMismatch, StoreUnavailable
from ranvier.stores.postgres import PostgresPersistenceStore
from ranvier.stores.postgres.sql import table_names
from tests.adapters.postgres import fresh_prefix, open_postgres
from tests.contract.helpers import envelope
from tests.postgres.conftest import database_url
from tests.servers import POSTGRES_URL


def _with_user(url: str, user: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}@{rest.rpartition('@')[2]}"


@pytest.mark.parametrize("min_connections", [1, 0])  # failing at connect, or at first use
async def test_a_missing_database_says_to_create_it(min_connections: int) -> None:
    url = database_url("ranvier_no_such_database")
    with pytest.raises(StoreUnavailable) as caught:
        store = await PostgresPersistenceStore.connect(url, min_connections=min_connections)
        try:
            await store.load("t")
        finally:
            await store.close()
    message = str(caught.value)
    assert "ranvier_no_such_database" in message and "create the database" in message
    assert "\n" not in message
    assert type(caught.value.__cause__).__name__ == "InvalidCatalogNameError"


@pytest.mark.parametrize("min_connections", [1, 0])
async def test_an_unknown_user_says_to_check_the_user(min_connections: int) -> None:
    url = _with_user(POSTGRES_URL, "ranvier_no_such_user:secret")
    with pytest.raises(StoreUnavailable, match="check the user and password") as caught:
        store = await PostgresPersistenceStore.connect(url, min_connections=min_connections)
        try:
            await store.load("t")
        finally:
            await store.close()
    assert "\n" not in str(caught.value) and "secret" not in str(caught.value)


async def _handmade(prefix: str, ddl: str) -> PostgresPersistenceStore:
    store = await open_postgres(prefix)
    async with store.pool.acquire() as conn:
        await conn.execute(ddl)
    return store


async def test_a_handmade_events_table_with_other_columns_is_named_with_what_it_lacks() -> None:
    prefix = fresh_prefix()
    t = table_names(prefix)
    store = await _handmade(prefix, f"CREATE TABLE {t['events']} (trace_id text, data jsonb)")
    try:
        with pytest.raises(SchemaMismatch) as caught:
            await store.ensure_schema()
        message = str(caught.value)
        assert t["events"] in message
        assert "missing columns generation, step, schematic_version, outcome_kind" in message
        assert "\n" not in message
        async with store.pool.acquire() as conn:  # the whole attempt was rolled back
            assert await conn.fetchval("SELECT to_regclass($1)", t["state"]) is None
    finally:
        await store.drop_schema()
        await store.close()


async def test_a_handmade_table_of_other_types_or_keys_is_refused_before_any_write() -> None:
    prefix = fresh_prefix()
    t = table_names(prefix)
    ddl = f"""CREATE TABLE {t["leases"]} (trace_id text, holder text, token integer,
              expires_at timestamptz NOT NULL, owner text NOT NULL)"""
    store = await _handmade(prefix, ddl)
    try:
        with pytest.raises(SchemaMismatch) as caught:
            await store.ensure_schema()
        message = str(caught.value)
        assert t["leases"] in message
        assert "token is integer, not bigint" in message
        assert "owner is NOT NULL without a default" in message
        assert "primary key none, not (trace_id)" in message
    finally:
        await store.drop_schema()
        await store.close()


async def test_a_handmade_partitioned_events_table_with_the_right_columns_is_adopted() -> None:
    """The runbook's DDL, written out in full by an operator: ensure_schema keeps it."""
    prefix = fresh_prefix()
    t = table_names(prefix)
    store = await open_postgres(prefix, partitions=4)
    try:
        async with store.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                f"""CREATE TABLE {t["events"]} (
                    trace_id text COLLATE "C" NOT NULL, generation integer NOT NULL DEFAULT 0,
                    step bigint NOT NULL, schematic_version text NOT NULL,
                    outcome_kind text NOT NULL, node_id text, timestamp_ms bigint NOT NULL,
                    payload_hash text, payload json, written_at timestamptz,
                    PRIMARY KEY (trace_id, generation, step)) PARTITION BY HASH (trace_id)"""
            )
            for i in range(4):
                await conn.execute(
                    f"CREATE TABLE {t['events']}_{i} PARTITION OF {t['events']}"
                    f" FOR VALUES WITH (MODULUS 4, REMAINDER {i})"
                )
        await store.ensure_schema()
        await store.append(envelope("p", 2**40))
        trace = await store.load("p")
        assert trace is not None and [e.step for e in trace.events] == [2**40]
    finally:
        await store.drop_schema()
        await store.close()


async def test_a_value_the_database_refuses_is_invalid_input(
    pg_store: PostgresPersistenceStore,
) -> None:
    """Should a value pass the rules and not the database, it is InvalidInput all the
    same: the driver's DataError does not leak."""
    async with pg_store.pool.acquire() as conn:
        await conn.execute(
            f"ALTER TABLE {pg_store.table_prefix}_events ALTER COLUMN node_id TYPE varchar(8)"
        )
    with pytest.raises(InvalidInput, match="out of the range"):
        await pg_store.append(envelope("t", 0, node_id="a-rather-long-node"))
    assert await pg_store.load("t") is None
