"""Opening a store for one operation, and streaming over its traces."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ranvier import rules
from ranvier.errors import InvalidInput, SchemaMissing
from ranvier.model import TraceStatus, TraceSummary
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import open_store, resolve_store_url

PAGE_SIZE = 500
_OPTIONS: dict[str, Any] = {}


def parse_option(text: str) -> tuple[str, Any]:
    """`KEY=VALUE` -> (key, value); integers and true/false are converted."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise InvalidInput(f"store option {text!r} must look like KEY=VALUE, e.g. table_prefix=app")
    raw = value.strip()
    converted: Any = raw
    if raw.lstrip("-").isdigit():
        converted = int(raw)
    elif raw.lower() in ("true", "false"):
        converted = raw.lower() == "true"
    return key.strip(), converted


def set_default_options(options: dict[str, Any]) -> None:
    """Adapter options (table_prefix=, prefix=, pool sizes...) for every store opened here."""
    _OPTIONS.clear()
    _OPTIONS.update(options)


async def open_with_defaults(url: str | None, *, ensure_schema: bool = True) -> PersistenceStore:
    """`open_store` with the URL default and the options set by `set_default_options`."""
    try:
        return await open_store(resolve_store_url(url), ensure_schema=ensure_schema, **_OPTIONS)
    except TypeError as exc:  # an option the adapter does not take
        if not _OPTIONS:
            raise
        raise InvalidInput(f"store option rejected by the adapter: {exc}") from None


def mask_url(url: str) -> str:
    """The URL with its password replaced by ***, fit for output and logs."""
    return rules.masked_url(url)


@asynccontextmanager
async def opened(
    url: str | None, *, ensure_schema: bool = True, read_only: bool = False
) -> AsyncIterator[PersistenceStore]:
    """The store named by `url` (default: RANVIER_STORE_URL), closed on exit.

    `read_only`: create nothing; a store without the ranvier schema (a mistyped path or
    prefix) is `SchemaMissing` instead of an empty store.
    """
    store = await open_with_defaults(url, ensure_schema=ensure_schema and not read_only)
    try:
        if read_only:
            await require_schema(store)
        yield store
    finally:
        await store.close()


async def require_schema(store: PersistenceStore) -> None:
    """`SchemaMissing` unless the store holds the ranvier schema (read-only check)."""
    described = await store.describe()
    if described.latest_schema_version is not None and described.schema_version is None:
        raise SchemaMissing(
            f"no ranvier schema at {described.location} (run `ranvier schema ensure`, or "
            "check the URL and --store-option table_prefix=/prefix=)"
        )


async def iter_traces(
    store: PersistenceStore,
    *,
    status: TraceStatus | None = None,
    circuit: str | None = None,
    updated_before_ms: int | None = None,
    page_size: int = PAGE_SIZE,
) -> AsyncIterator[TraceSummary]:
    """Every matching trace summary, one page in memory at a time."""
    cursor: str | None = None
    while True:
        page = await store.list_traces(
            status=status,
            circuit=circuit,
            updated_before_ms=updated_before_ms,
            limit=page_size,
            cursor=cursor,
        )
        for item in page.items:
            yield item
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


async def count_traces(store: PersistenceStore) -> int:
    """Every trace, counted by the store."""
    return sum((await store.count_traces_by_status()).values())
