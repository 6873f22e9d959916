"""Store options in the URL (issue 14, #7): `?prefix=`, `?ttl_seconds=`,
`?max_connections=` work, unknown ones are refused naming the known ones, and
`rediss+cluster://` opens a TLS cluster client."""

from __future__ import annotations

import pytest
from redis.asyncio.connection import SSLConnection

from ranvier import InvalidInput, open_store
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from ranvier.stores.redis.connection import WaitingCluster, client_from_url, parse_url
from tests.contract.helpers import envelope
from tests.redis.conftest import trace_id


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


async def test_the_prefix_ttl_and_pool_size_come_from_the_url(redis_url: str, prefix: str) -> None:
    url = _with_query(redis_url, f"prefix={prefix}&ttl_seconds=60&max_connections=9")
    store = await open_store(url)
    try:
        assert isinstance(store, RedisPersistenceStore) and store.prefix == prefix
        tid = trace_id()
        await store.append(envelope(tid, 0))
        assert 0 < int(await store.client.ttl(k.trace_keys(prefix, tid)[0])) <= 60
        settings = (await store.describe()).settings
        assert (settings["ttl_seconds"], settings["max_connections"]) == (60, 9)
    finally:
        await store.close()


async def test_keywords_win_over_the_url(redis_url: str, prefix: str) -> None:
    url = _with_query(redis_url, "prefix=ranvier:persistence:other&max_connections=9")
    async with await RedisPersistenceStore.connect(url, prefix=prefix, max_connections=4) as s:
        assert s.prefix == prefix
        assert (await s.describe()).settings["max_connections"] == 4


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0?prefx=x",
        "redis://127.0.0.1:6379/0?timeout=3",
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001?nope=1",
    ],
)
async def test_an_unknown_url_option_is_refused_naming_the_known_ones(url: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        await open_store(url)
    message = str(caught.value)
    for known in ("prefix", "ttl_seconds", "max_connections", "pool_timeout", "ssl_cert_reqs"):
        assert known in message


@pytest.mark.parametrize(
    ("query", "match"),
    [
        ("ttl_seconds=soon", "ttl_seconds"),
        ("ttl_seconds=0", "ttl_seconds"),
        ("max_connections=0", "max_connections"),
        ("pool_timeout=-1", "pool_timeout"),
        ("prefix=a{b}", "prefix"),
        ("db=zero", "db"),
    ],
)
async def test_a_bad_url_option_value_is_invalid_input(query: str, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        await open_store(f"redis://127.0.0.1:6379/0?{query}")


def test_the_password_is_masked_in_url_errors() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_url("redis://user:s3cret@127.0.0.1:6379/0?bad=1")
    assert "s3cret" not in str(caught.value) and "***" in str(caught.value)


async def test_redis_py_options_pass_through() -> None:
    client = client_from_url("redis://127.0.0.1:6379/3?client_name=me&socket_keepalive=true")
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["client_name"], kwargs["socket_keepalive"], kwargs["db"]) == ("me", True, 3)
    await client.aclose()


async def test_a_tls_cluster_url_makes_a_tls_cluster_client() -> None:
    url = "rediss+cluster://:pw@node1:7000,node2:7001?ssl_cert_reqs=none&max_connections=3"
    client = client_from_url(url)
    assert isinstance(client, WaitingCluster)
    kwargs = client.nodes_manager.connection_kwargs
    assert kwargs["connection_class"] is SSLConnection
    assert (kwargs["ssl_cert_reqs"], kwargs["password"]) == ("none", "pw")
    assert [n.name for n in client.nodes_manager.startup_nodes.values()] == [
        "node1:7000",
        "node2:7001",
    ]
    assert client.gate.limit == 3
    plain = client_from_url("redis+cluster://node1:7000")
    assert plain.nodes_manager.connection_kwargs.get("connection_class") is not SSLConnection
    await client.aclose()
    await plain.aclose()


async def test_a_tls_url_makes_a_tls_client() -> None:
    client = client_from_url("rediss://127.0.0.1:6380/0?ssl_cert_reqs=none")
    assert client.connection_pool.connection_class is SSLConnection
    await client.aclose()
