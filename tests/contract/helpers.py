"""Small builders shared by the conformance suite.

Everything here goes through the public contract only, so the suite stays
adapter-independent.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from ranvier import (
    CompletionState,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceStatus,
    TraceSummary,
)
from ranvier.stores.base import PersistenceStore


def new_trace_id(label: str = "t") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


def envelope(
    trace_id: str,
    step: int,
    payload: Any = None,
    *,
    circuit: str = "orders",
    version: str = "1.0",
    kind: OutcomeKind = OutcomeKind.NEXT,
    node_id: str | None = None,
    timestamp_ms: int | None = None,
) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=version,
        step=step,
        outcome_kind=kind,
        node_id=node_id if node_id is not None else f"node{step}",
        payload=payload if payload is not None else {"step": step},
        **({} if timestamp_ms is None else {"timestamp_ms": timestamp_ms}),
    )


async def append_steps(
    store: PersistenceStore, trace_id: str, count: int, *, circuit: str = "orders"
) -> None:
    for step in range(count):
        await store.append(envelope(trace_id, step, circuit=circuit))


async def new_trace(
    store: PersistenceStore,
    *,
    steps: int = 1,
    circuit: str = "orders",
    completion: CompletionState | None = None,
    label: str = "t",
) -> str:
    """A trace with `steps` events, completed as `completion` if given."""
    trace_id = new_trace_id(label)
    await append_steps(store, trace_id, steps, circuit=circuit)
    if completion is not None:
        await store.complete(trace_id, completion)
    return trace_id


async def must_load(store: PersistenceStore, trace_id: str) -> PersistedTrace:
    trace = await store.load(trace_id)
    assert trace is not None, f"trace {trace_id!r} should be stored"
    return trace


async def wait_past(store: PersistenceStore, moment_ms: int) -> None:
    """Sleep until the store's clock is past `moment_ms` (lease expiry, age filters)."""
    for _ in range(10_000):
        now = await store.now_ms()
        if now > moment_ms:
            return
        await asyncio.sleep(min(0.05, (moment_ms - now + 1) / 1000))
    raise AssertionError(f"the store's clock never passed {moment_ms}")


async def all_pages(
    store: PersistenceStore,
    *,
    status: TraceStatus | None = None,
    circuit: str | None = None,
    updated_before_ms: int | None = None,
    limit: int = 100,
) -> list[TraceSummary]:
    """Every summary matching the filters, walking the cursor to the end."""
    items: list[TraceSummary] = []
    cursor: str | None = None
    for _ in range(10_000):
        page = await store.list_traces(
            status=status,
            circuit=circuit,
            updated_before_ms=updated_before_ms,
            limit=limit,
            cursor=cursor,
        )
        assert len(page.items) <= limit
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor
    raise AssertionError("list_traces never returned a last page")


async def listed_ids(store: PersistenceStore, **filters: Any) -> set[str]:
    return {s.trace_id for s in await all_pages(store, **filters)}


def intervention(target: str, payload: Any, timestamp_ms: int) -> Intervention:
    return Intervention(target_node=target, payload_override=payload, timestamp_ms=timestamp_ms)
