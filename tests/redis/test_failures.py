"""Outages and cut connections: `StoreUnavailable` or a transparent, idempotent retry."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from redis.exceptions import BusyLoadingError, ClusterDownError, TryAgainError

from ranvier import Intervention, StoreUnavailable
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis.batch import translate
from ranvier.stores.redis.connection import client_from_url
from tests.contract.helpers import envelope, must_load
from tests.faults.proxy import FaultProxy
from tests.redis.conftest import trace_id
from tests.redis.servers import RedisServer, cli, free_port


async def test_an_unreachable_server_is_store_unavailable() -> None:
    port = free_port()
    with pytest.raises(StoreUnavailable):
        await RedisPersistenceStore.connect(f"redis://127.0.0.1:{port}/0", socket_timeout=1.0)


async def test_an_unreachable_cluster_is_store_unavailable() -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    with pytest.raises(StoreUnavailable):
        await RedisPersistenceStore.connect(url, socket_timeout=1.0)


@pytest.mark.parametrize(
    "error", [BusyLoadingError("LOADING"), ClusterDownError("CLUSTERDOWN"), TryAgainError("x")]
)
def test_loading_and_cluster_errors_are_store_unavailable(error: Exception) -> None:
    with pytest.raises(StoreUnavailable) as caught, translate():
        raise error
    assert caught.value.__cause__ is error


async def test_a_stopped_server_fails_loudly_then_recovers(private_server: RedisServer) -> None:
    async with await RedisPersistenceStore.connect(private_server.url) as store:
        tid = trace_id()
        await store.append(envelope(tid, 0))
        private_server.stop()
        for attempt in (
            store.append(envelope(tid, 1)),
            store.load(tid),
            store.list_traces(),
            store.complete(tid, "success"),  # type: ignore[arg-type]
            store.now_ms(),
        ):
            with pytest.raises(StoreUnavailable):
                await attempt
        private_server.launch()  # no persistence: the restarted server is empty
        await store.append(envelope(tid, 0))
        assert [e.step for e in (await must_load(store, tid)).events] == [0]


async def test_killed_connections_are_reopened_transparently(private_server: RedisServer) -> None:
    async with await RedisPersistenceStore.connect(private_server.url) as store:
        tid = trace_id()
        await store.append(envelope(tid, 0))
        assert int(cli(private_server.port, "CLIENT", "KILL", "TYPE", "normal")) >= 1
        await store.append(envelope(tid, 1))
        cli(private_server.port, "CLIENT", "KILL", "TYPE", "normal")
        assert [e.step for e in (await must_load(store, tid)).events] == [0, 1]


async def test_many_killed_connections_are_reopened_transparently(
    private_server: RedisServer,
) -> None:
    async with await RedisPersistenceStore.connect(private_server.url) as store:
        ids = [trace_id() for _ in range(64)]
        for step in range(3):
            await asyncio.gather(*(store.append(envelope(tid, step)) for tid in ids))
            cli(private_server.port, "CLIENT", "KILL", "TYPE", "normal")
        for tid in ids:
            assert [e.step for e in (await must_load(store, tid)).events] == [0, 1, 2]


async def test_flushed_scripts_are_reloaded(private_server: RedisServer) -> None:
    async with await RedisPersistenceStore.connect(private_server.url) as store:
        tid = trace_id()
        await store.append(envelope(tid, 0))
        assert cli(private_server.port, "SCRIPT", "FLUSH").strip() == "OK"
        await store.append(envelope(tid, 1))
        assert [e.step for e in (await must_load(store, tid)).events] == [0, 1]


async def test_a_write_resent_after_an_unknown_outcome_is_not_duplicated(
    private_server: RedisServer,
) -> None:
    async with FaultProxy(private_server.port) as proxy:
        store = await RedisPersistenceStore.connect(f"redis://{proxy.address}/0")
        tid = trace_id()
        writes = {
            "append": lambda: store.append(envelope(tid, 0, {"once": True})),
            "intervene": lambda: store.save_intervention(tid, Intervention(target_node="n0")),
            "claim": lambda: store.compensations.claim(f"{tid}:c:f"),
            "lease": lambda: store.acquire_lease(tid, "worker", 60_000),
        }
        results = {}
        for name, write in writes.items():
            proxy.drop_answer(count=1)  # done by the server, the reply never arrives
            results[name] = await write()
        await store.close()
        assert proxy.stats["drop_answer"] == len(writes)
    assert results["claim"] is True  # still ours after the re-send
    assert results["lease"] is not None and results["lease"].token == 1
    async with await RedisPersistenceStore.connect(private_server.url) as direct:
        trace = await must_load(direct, tid)
    assert [e.payload for e in trace.events] == [{"once": True}]
    assert len(trace.interventions) == 1


@pytest.mark.slow
async def test_a_server_still_loading_its_data_is_store_unavailable(tmp_path: Path) -> None:
    server = RedisServer.start(tmp_path / "loading", "--enable-debug-command", "yes")
    try:
        assert cli(server.port, "DEBUG", "POPULATE", "1000000", "fill", "64").strip() == "OK"
        assert cli(server.port, "SAVE").strip() == "OK"
        server.stop()
        server.launch(until="")  # accepting connections, maybe still reading the dump
        store = RedisPersistenceStore(client_from_url(server.url))
        causes: list[type[BaseException]] = []
        for _ in range(3000):
            try:
                await store.append(envelope(trace_id(), 0))
                break
            except StoreUnavailable as exc:
                causes.append(type(exc.__cause__))
                await asyncio.sleep(0.01)
        else:
            raise AssertionError("the server never finished loading")
        await store.close()
        await store.client.aclose()
        assert BusyLoadingError in causes, causes
    finally:
        server.stop()
