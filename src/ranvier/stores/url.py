"""`open_store(url)`: pick the adapter from the URL's scheme.

Optional drivers are imported only here, inside the adapter that needs them, so
`import ranvier` works without any extra installed.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from ranvier.errors import InvalidInput
from ranvier.stores.base import PersistenceStore

DEFAULT_STORE_URL = "sqlite:///ranvier.db"
STORE_URL_ENV = "RANVIER_STORE_URL"

# scheme -> (module holding `from_url`, the extra that brings its driver)
_ADAPTERS: dict[str, tuple[str, str | None]] = {
    "memory": ("ranvier.stores.memory", None),
    "sqlite": ("ranvier.stores.sqlite", None),
    "postgresql": ("ranvier.stores.postgres", "postgres"),
    "postgres": ("ranvier.stores.postgres", "postgres"),
    "redis": ("ranvier.stores.redis", "redis"),
    "rediss": ("ranvier.stores.redis", "redis"),
    "redis+cluster": ("ranvier.stores.redis", "redis"),
    "rediss+cluster": ("ranvier.stores.redis", "redis"),
}


def resolve_store_url(url: str | None = None) -> str:
    """The URL given, else `RANVIER_STORE_URL` (unless empty), else the SQLite default.

    An empty URL given on purpose is `InvalidInput`, never the default store.
    """
    if url is None:
        return os.environ.get(STORE_URL_ENV) or DEFAULT_STORE_URL
    if type(url) is not str or not url.strip():
        raise InvalidInput(
            f"store URL {url!r} is empty; give one (sqlite:///path.db, postgresql://..., "
            f"redis://..., memory://) or None for the default ({DEFAULT_STORE_URL})"
        )
    return url


def _scheme(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    if not sep or scheme.lower() not in _ADAPTERS:
        known = ", ".join(f"{s}://" for s in _ADAPTERS)
        raise InvalidInput(f"store URL {url!r} has no known scheme; use one of {known}")
    return scheme.lower()


async def open_store(
    url: str | None = None, *, ensure_schema: bool = True, **options: Any
) -> PersistenceStore:
    """Open the store named by `url` (default: `RANVIER_STORE_URL`, else `sqlite:///ranvier.db`).

    `options` go to the adapter (pool sizes, prefixes, TTLs...). With `ensure_schema`
    (the default) the store's tables or keys are created if missing.
    """
    url = resolve_store_url(url)
    module_name, extra = _ADAPTERS[_scheme(url)]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(
            f"the {extra} adapter needs its driver ({exc.name} is missing); "
            f"install it with: pip install 'ranvier[{extra}]'"
        ) from exc
    store: PersistenceStore = await module.from_url(url, **options)
    if ensure_schema:
        try:
            await store.ensure_schema()
        except BaseException:
            await store.close()
            raise
    return store
