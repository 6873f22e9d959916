"""Opening a store for one operation, and streaming over its traces."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ranvier.errors import InvalidInput
from ranvier.model import TraceStatus, TraceSummary
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import open_store, resolve_store_url

PAGE_SIZE = 500
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*@")
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
    return _PASSWORD.sub(r"\1***@", url)


@asynccontextmanager
async def opened(url: str | None, *, ensure_schema: bool = True) -> AsyncIterator[PersistenceStore]:
    """The store named by `url` (default: RANVIER_STORE_URL), closed on exit."""
    store = await open_with_defaults(url, ensure_schema=ensure_schema)
    try:
        yield store
    finally:
        await store.close()


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


async def count_traces(store: PersistenceStore, **filters: Any) -> int:
    count = 0
    async for _ in iter_traces(store, **filters):
        count += 1
    return count
