"""Key layout: one hash tag per trace, odd ids encoded, the runbook's KEYS pattern."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from ranvier import CompletionState, Intervention, InvalidInput, Lease
from ranvier.stores.redis import RedisPersistenceStore
from ranvier.stores.redis import keys as k
from tests.contract.helpers import envelope, must_load
from tests.redis.conftest import trace_id
from tests.redis.servers import RedisServer, cli

ODD_IDS = [
    "a{b}c",
    "{",
    "}",
    "}{",
    "{}",
    "~abc",
    "order 42/ü",
    "tab\there",
    "star*?[x]",
    "plain-id_1.2:3",
]


@pytest.mark.parametrize("tid", ODD_IDS)
def test_every_key_of_a_trace_shares_one_slot(tid: str) -> None:
    keys = k.trace_keys("ranvier:persistence", tid)
    assert len({key_slot(key.encode()) for key in keys}) == 1
    tag = keys[0][keys[0].index("{") + 1 : keys[0].index("}")]
    assert k.decode_id(tag) == tid
    assert all(key.startswith("ranvier:persistence:{") for key in keys)


def test_encoded_ids_never_collide_with_plain_ones() -> None:
    encoded = {k.encode_id(tid) for tid in ODD_IDS}
    assert len(encoded) == len(ODD_IDS)
    assert k.encode_id("plain-id_1.2:3") == "plain-id_1.2:3"  # readable when it can be
    tricky = k.encode_id("a{b}c")
    assert k.encode_id(tricky) != tricky  # an id that looks encoded is encoded again


@pytest.mark.parametrize("prefix", ["", "a{b}", "with space", "star*"])
async def test_a_prefix_that_could_break_the_tag_or_a_pattern_is_invalid(prefix: str) -> None:
    with pytest.raises(InvalidInput, match="prefix"):
        k.validate_prefix(prefix)


async def test_odd_trace_ids_round_trip_on_one_slot(redis_store: RedisPersistenceStore) -> None:
    for odd in ODD_IDS:
        tid = f"{odd}-{trace_id()}"
        await redis_store.append(envelope(tid, 0, {"id": tid}))
        await redis_store.save_intervention(tid, Intervention(target_node="n"))
        lease = await redis_store.acquire_lease(tid, "worker", 10_000)
        assert isinstance(lease, Lease)
        await redis_store.append(envelope(tid, 1), fence=lease.token)
        await redis_store.resume(tid, 0, fence=lease.token)
        await redis_store.complete(tid, CompletionState.SUCCESS, fence=lease.token)
        trace = await must_load(redis_store, tid)
        assert trace.trace_id == tid
        assert trace.events[0].payload == {"id": tid}
        assert [e.step for e in trace.superseded_events] == [1]
    listed = {s.trace_id for s in (await redis_store.list_traces(limit=100)).items}
    assert len(listed) == len(ODD_IDS)


async def test_the_runbook_keys_pattern_lists_the_trace(private_server: RedisServer) -> None:
    async with await RedisPersistenceStore.connect(private_server.url) as store:
        tid = trace_id()
        await store.append(envelope(tid, 0))
        await store.save_intervention(tid, Intervention(target_node="n"))
        await store.acquire_lease(tid, "w", 60_000)
        await store.compensations.claim(f"{tid}:orders:boom")
    listed = cli(private_server.port, "KEYS", "ranvier:persistence:*").split()
    assert set(listed) == {
        f"ranvier:persistence:{{{tid}}}:state",
        f"ranvier:persistence:{{{tid}}}:ev",
        f"ranvier:persistence:{{{tid}}}:iv",
        f"ranvier:persistence:{{{tid}}}:lease",
        f"ranvier:persistence:compensation:{{{tid}:orders:boom}}",
    }
