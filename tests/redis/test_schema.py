"""The schema marker and `describe` (issue 14, #5 and #6): reads create nothing, an
empty prefix has no schema, `ensure_schema` writes only `<prefix>:schema`, and describe
reports what doctor judges (AOF, fsync, replicas, cluster, eviction; None when CONFIG is
refused)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ranvier import CompletionState, SchemaMismatch, open_store
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from ranvier.stores.redis.scan import scan_all
from tests.contract.helpers import envelope
from tests.redis.conftest import trace_id
from tests.redis.servers import RedisServer, cli


async def _keys(store: RedisPersistenceStore, pattern: str) -> list[str]:
    return [key async for batch in scan_all(store.client, pattern, 1000) for key in batch]


async def test_reads_on_an_empty_prefix_create_nothing(redis_url: str, prefix: str) -> None:
    store = await open_store(redis_url, prefix=prefix, ensure_schema=False)
    assert isinstance(store, RedisPersistenceStore)
    try:
        tid = trace_id()
        assert await store.load(tid) is None
        assert await store.load_many([tid]) == []
        assert (await store.list_traces()).items == ()
        assert await store.get_lease(tid) is None
        assert set((await store.count_traces_by_status()).values()) == {0}
        assert await store.count_completed_before(await store.now_ms()) == 0
        assert await store.list_lease_tokens() == []
        assert await store.compensations.get("k") is None
        assert await store.compensations.list_records() == []
        assert await store.compensations.list_unfinished() == []
        assert await store.compensations.count_older_than_ms(await store.now_ms()) == 0
        description = await store.describe()
        assert description.schema_version is None
        assert description.latest_schema_version == k.SCHEMA_VERSION
        assert await _keys(store, f"{prefix}*") == []
    finally:
        await store.close()


async def test_ensure_schema_writes_only_the_marker(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        assert await _keys(store, f"{prefix}*") == []  # connecting writes nothing
        await store.ensure_schema()
        await store.ensure_schema()  # idempotent
        assert await _keys(store, f"{prefix}*") == [k.schema_key(prefix)]
        assert await store.client.get(k.schema_key(prefix)) == str(k.SCHEMA_VERSION).encode()
        description = await store.describe()
        assert description.schema_version == description.latest_schema_version
        assert k.schema_key(prefix) in description.objects
        assert f"{prefix}:{{<trace_id>}}:state" in description.objects


async def test_keys_written_before_the_marker_report_the_current_layout(
    redis_url: str, prefix: str
) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        await store.append(envelope(trace_id(), 0))
        assert (await store.describe()).schema_version == k.SCHEMA_VERSION


async def test_a_newer_layout_is_schema_mismatch(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        await store.client.set(k.schema_key(prefix), str(k.SCHEMA_VERSION + 1))
        with pytest.raises(SchemaMismatch, match="upgrade ranvier"):
            await store.ensure_schema()
        assert (await store.describe()).schema_version == k.SCHEMA_VERSION + 1


async def test_every_key_stays_under_the_runbook_prefix(private_server: RedisServer) -> None:
    async with await open_store(private_server.url) as store:
        assert isinstance(store, RedisPersistenceStore)
        tid = trace_id()
        await store.append(envelope(tid, 0))
        await store.acquire_lease(tid, "w", 60_000)
        await store.compensations.claim(f"{tid}:c:f")
        await store.complete(tid, CompletionState.FAULT)
        await store.raise_lease_token(trace_id(), 5)
    listed = cli(private_server.port, "KEYS", "*").split()
    assert listed and all(key.startswith("ranvier:persistence:") for key in listed)
    assert "ranvier:persistence:schema" in listed


async def test_describe_reports_what_doctor_judges(tmp_path: Path) -> None:
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    server = RedisServer.start(tmp_path / "aof", *aof, "--maxmemory-policy", "noeviction")
    try:
        cli(server.port, "CONFIG", "SET", "requirepass", "s3cret")
        url = f"redis://:s3cret@127.0.0.1:{server.port}/0"
        async with await RedisPersistenceStore.connect(url) as store:
            description = await store.describe()
    finally:
        server.stop()
    assert "s3cret" not in description.location and "***" in description.location
    settings = description.settings
    assert settings["appendonly"] is True and settings["appendfsync"] == "always"
    assert (settings["role"], settings["connected_replicas"]) == ("master", 0)
    assert (settings["cluster"], settings["maxmemory-policy"]) == (False, "noeviction")
    assert settings["save"] == ""


async def test_describe_counts_connected_replicas(tmp_path: Path) -> None:
    primary = RedisServer.start(tmp_path / "primary", "--appendonly", "no")
    replica = RedisServer.start(tmp_path / "replica", "--replicaof", "127.0.0.1", "0")
    try:
        cli(replica.port, "REPLICAOF", "127.0.0.1", str(primary.port))
        async with await RedisPersistenceStore.connect(primary.url) as store:
            for _ in range(200):
                settings = (await store.describe()).settings
                if settings["connected_replicas"]:
                    break
                await store.client.ping()
            assert settings["connected_replicas"] == 1
            assert settings["appendonly"] is False and settings["save"] == ""
    finally:
        replica.stop()
        primary.stop()


async def test_describe_without_config_reports_none(tmp_path: Path) -> None:
    server = RedisServer.start(tmp_path / "managed", "--rename-command", "CONFIG", "")
    try:
        async with await RedisPersistenceStore.connect(server.url) as store:
            settings = (await store.describe()).settings
    finally:
        server.stop()
    assert settings["appendonly"] is None and settings["appendfsync"] is None
    assert settings["maxmemory-policy"] is None
    assert settings["role"] == "master"  # INFO still answers


async def test_describe_on_a_cluster_reports_each_primary(prefix: str, redis_url: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        settings = (await store.describe()).settings
    assert settings["cluster"] is ("cluster" in redis_url)
    assert settings["appendonly"] is False  # the test servers run without AOF
    assert settings["connected_replicas"] == 0


async def test_ensure_schema_stops_old_claims_from_expiring(redis_url: str, prefix: str) -> None:
    async with await RedisPersistenceStore.connect(redis_url, prefix=prefix) as store:
        claim = k.compensation_key(prefix, f"{trace_id()}:c:f")
        done = k.compensation_key(prefix, f"{trace_id()}:c:f")
        # as ranvier wrote them before the marker: a claim carried the TTL too
        await store.client.set(claim, b"claimed\0" + b"1700000000000\0\0req", ex=600)
        await store.client.set(done, b"compensated\0" + b"1\0" + b"2\0", ex=600)
        await store.ensure_schema()
        assert int(await store.client.ttl(claim)) == -1
        assert 0 < int(await store.client.ttl(done)) <= 600
        record = await store.compensations.get(claim.rsplit("{", 1)[1][:-1])
        assert record is not None and record.claimed_at_ms == 1700000000000
