"""Concurrent writers lose nothing, on one trace and on many, for every adapter.

Where the adapter is shared by several processes (`capabilities.multi_process`), the
writes are spread over two stores opened on the same namespace.
"""

from __future__ import annotations

import asyncio

from ranvier import CheckpointConflict
from ranvier.stores.base import PersistenceStore
from tests.adapters import Opener
from tests.contract.helpers import envelope, listed_ids, must_load, new_trace_id


async def _stores(store: PersistenceStore, store_opener: Opener) -> list[PersistenceStore]:
    if store.capabilities.multi_process:
        return [store, await store_opener()]
    return [store]


async def test_hundreds_of_concurrent_appends_to_one_trace_lose_nothing(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    tid = new_trace_id()
    steps = list(range(300))
    await asyncio.gather(
        *(stores[s % len(stores)].append(envelope(tid, s, {"s": s})) for s in reversed(steps))
    )
    for reader in stores:
        trace = await must_load(reader, tid)
        assert [e.step for e in trace.events] == steps
        assert [e.payload for e in trace.events] == [{"s": s} for s in steps]


async def test_hundreds_of_concurrent_appends_to_many_traces_lose_nothing(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    ids = [new_trace_id(f"many{i}") for i in range(100)]
    writes = [(tid, step) for step in range(3) for tid in ids]
    await asyncio.gather(
        *(
            stores[n % len(stores)].append(envelope(tid, step, {"t": tid, "s": step}))
            for n, (tid, step) in enumerate(writes)
        )
    )
    for reader in stores:
        assert await listed_ids(reader) == set(ids)
    for tid in ids:
        trace = await must_load(stores[-1], tid)
        assert [e.payload for e in trace.events] == [{"t": tid, "s": s} for s in range(3)]


async def test_concurrent_identical_appends_store_exactly_one_event(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    tid = new_trace_id()
    await asyncio.gather(
        *(stores[n % len(stores)].append(envelope(tid, 0, {"same": 1})) for n in range(100))
    )
    await asyncio.gather(
        *(stores[n % len(stores)].append(envelope(tid, 1, {"same": 2})) for n in range(100))
    )
    trace = await must_load(store, tid)
    assert [(e.step, e.payload) for e in trace.events] == [(0, {"same": 1}), (1, {"same": 2})]
    assert trace.superseded_events == ()


async def test_concurrent_different_appends_of_one_step_have_one_winner(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    tid = new_trace_id()
    results = await asyncio.gather(
        *(stores[n % len(stores)].append(envelope(tid, 0, {"writer": n})) for n in range(50)),
        return_exceptions=True,
    )
    winners = [n for n, r in enumerate(results) if r is None]
    assert len(winners) == 1
    assert all(isinstance(r, CheckpointConflict) for r in results if r is not None)
    trace = await must_load(store, tid)
    assert [e.payload for e in trace.events] == [{"writer": winners[0]}]


async def test_concurrent_writes_and_reads_see_a_consistent_trace(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    tid = new_trace_id()
    await store.append(envelope(tid, 0))

    async def reader() -> None:
        for _ in range(20):
            trace = await must_load(stores[-1], tid)
            steps = [e.step for e in trace.events]
            assert steps == sorted(set(steps))
            assert len(trace.events) >= 1
            await asyncio.sleep(0)

    writes = [stores[s % len(stores)].append(envelope(tid, s)) for s in range(1, 150)]
    await asyncio.gather(reader(), *writes, reader())
    assert len((await must_load(store, tid)).events) == 150


async def test_concurrent_lease_acquisitions_across_stores_have_one_winner(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    tids = [new_trace_id() for _ in range(10)]
    results = await asyncio.gather(
        *(
            stores[n % len(stores)].acquire_lease(tid, f"w{n}", 60_000)
            for tid in tids
            for n in range(20)
        )
    )
    winners = [r for r in results if r is not None]
    assert sorted(w.trace_id for w in winners) == sorted(tids)


async def test_concurrent_claims_across_stores_have_one_winner(
    store: PersistenceStore, store_opener: Opener
) -> None:
    stores = await _stores(store, store_opener)
    keys = [f"{new_trace_id()}:orders:fault" for _ in range(10)]
    results = await asyncio.gather(
        *(stores[n % len(stores)].compensations.claim(k) for k in keys for n in range(20))
    )
    assert results.count(True) == len(keys)
