"""Fixtures for the PostgreSQL adapter's own tests: fresh prefixes and fresh databases."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from ranvier.stores.postgres import PostgresPersistenceStore
from tests.adapters.postgres import fresh_prefix, open_postgres
from tests.servers import PG_START, POSTGRES_URL, server_missing


def database_url(name: str) -> str:
    """POSTGRES_URL with another database name."""
    base, _, _ = POSTGRES_URL.rpartition("/")
    return f"{base}/{name}"


async def _admin() -> asyncpg.Connection:
    try:
        conn: asyncpg.Connection = await asyncpg.connect(POSTGRES_URL)
    except (OSError, asyncpg.PostgresError) as exc:
        server_missing("PostgreSQL", POSTGRES_URL, exc, PG_START)
        raise
    return conn


async def create_database() -> str:
    name = f"ranvier_t{uuid.uuid4().hex[:12]}"
    conn = await _admin()
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return name


async def drop_database(name: str) -> None:
    conn = await _admin()
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    """The name of a database created for this test and dropped after it."""
    name = await create_database()
    try:
        yield name
    finally:
        await drop_database(name)


@pytest.fixture
async def pg_store() -> AsyncIterator[PostgresPersistenceStore]:
    """A store on a fresh table prefix of the shared server, schema ensured."""
    store = await open_postgres(fresh_prefix())
    try:
        await store.ensure_schema()
        yield store
    finally:
        await store.drop_schema()
        await store.close()
