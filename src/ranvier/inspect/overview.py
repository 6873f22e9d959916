"""The store overview: what the store is, what `doctor` says, what it holds."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ranvier.inspect.state import Inspector
from ranvier.model import CompensationRecord
from ranvier.ops.doctor import Check, diagnose
from ranvier.ops.schema import describe
from ranvier.ops.stores import mask_url

UNFINISHED_SHOWN = 50
COUNT_WAIT_S = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Overview:
    adapter: str
    location: str
    settings: list[tuple[str, str]]
    """The adapter's description, flattened: (name, value) pairs."""
    checks: list[Check]
    counts: Mapping[str, int]
    unfinished: list[CompensationRecord]
    store_now_ms: int | None
    took_ms: float
    errors: list[str] = field(default_factory=list)


async def overview(inspector: Inspector) -> Overview:
    """Every section; a section that fails shows its error instead of failing the page."""
    started = time.perf_counter()
    store, url = inspector.store, inspector.settings.store_url
    errors: list[str] = []
    settings: list[tuple[str, str]] = []
    try:
        settings = flatten(await describe(store, url))
    except Exception as exc:  # a page of figures: show what failed, keep the rest
        errors.append(f"describe: {type(exc).__name__}: {exc}")
    counts: Mapping[str, int] = {}
    unfinished: list[CompensationRecord] = []
    now = None
    try:
        counts = (await inspector.counts.current(wait_s=COUNT_WAIT_S)).values or {}
        unfinished = await store.compensations.list_unfinished(limit=UNFINISHED_SHOWN)
        now = await store.now_ms()
    except Exception as exc:
        errors.append(f"store: {type(exc).__name__}: {exc}")
    checks = await diagnose(url)
    return Overview(
        adapter=store.adapter,
        location=mask_url(url),
        settings=settings,
        checks=checks,
        counts=counts,
        unfinished=unfinished,
        store_now_ms=now,
        took_ms=(time.perf_counter() - started) * 1000,
        errors=errors,
    )


def flatten(info: Any, prefix: str = "") -> list[tuple[str, str]]:
    """Nested mappings and objects as dotted names: pool.max_size = 10."""
    if hasattr(info, "__dataclass_fields__"):
        info = {name: getattr(info, name) for name in info.__dataclass_fields__}
    if isinstance(info, Mapping):
        pairs: list[tuple[str, str]] = []
        for key, value in info.items():
            pairs += flatten(value, f"{prefix}{key}.")
        return pairs
    if isinstance(info, list | tuple):
        value = ", ".join(str(v) for v in info) or "-"
    else:
        value = "-" if info is None else str(info)
    return [(prefix.rstrip("."), value)]
