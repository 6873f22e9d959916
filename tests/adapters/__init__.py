"""Every adapter the conformance suite runs against, by name.

Each module listed in ADAPTER_MODULES defines `FACTORIES: dict[str, StoreFactory]`.
A factory is an async context manager taking the pytest request and a temp dir; it
prepares a fresh namespace (file, table prefix, key prefix) and yields an `opener`:
an async function returning a new store on that namespace (call it twice to get two
connections to the same data). On exit it closes what it opened and drops the namespace.

`RANVIER_TEST_ADAPTERS=memory,sqlite` narrows a local run; CI runs them all.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from ranvier.stores.base import PersistenceStore

Opener = Callable[[], Awaitable[PersistenceStore]]
StoreFactory = Callable[[Any, Path], AbstractAsyncContextManager[Opener]]

ADAPTER_MODULES = ("memory", "postgres", "sqlite", "redis")


def all_factories() -> dict[str, StoreFactory]:
    factories: dict[str, StoreFactory] = {}
    for name in ADAPTER_MODULES:
        module = importlib.import_module(f"tests.adapters.{name}")
        factories.update(module.FACTORIES)
    wanted = os.environ.get("RANVIER_TEST_ADAPTERS")
    if wanted and not os.environ.get("CI"):
        keep = {w.strip() for w in wanted.split(",")}
        factories = {k: v for k, v in factories.items() if k in keep}
    return factories


def durable_factories() -> dict[str, StoreFactory]:
    return {k: v for k, v in all_factories().items() if k != "memory"}
