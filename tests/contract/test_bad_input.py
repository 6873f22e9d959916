"""Bad input is `InvalidInput` with a message that says what to change, and stores nothing.

Odd but valid ids round-trip on every adapter (our validation decides, not the backend).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from ranvier import CompletionState, InvalidInput, OutcomeKind, PersistenceEnvelope, rules
from ranvier.stores.base import PersistenceStore
from tests.contract.helpers import envelope, intervention, listed_ids, must_load, new_trace

LIMIT = rules.MAX_ID_LENGTH
MAX_PAYLOAD = rules.DEFAULT_MAX_PAYLOAD_BYTES


def _deep(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _cyclic() -> Any:
    value: list[Any] = []
    value.append({"self": value})
    return value


BAD_ENVELOPE_FIELDS: dict[str, tuple[dict[str, Any], str]] = {
    "empty trace_id": ({"trace_id": ""}, "trace_id must not be empty"),
    "long trace_id": ({"trace_id": "t" * (LIMIT + 1)}, f"at most {LIMIT}"),
    "NUL in trace_id": ({"trace_id": "a\x00b"}, "trace_id contains a NUL"),
    "surrogate in trace_id": ({"trace_id": "a\ud800"}, "trace_id"),
    "int trace_id": ({"trace_id": 7}, "trace_id must be a str"),
    "empty circuit": ({"circuit": ""}, "circuit must not be empty"),
    "long circuit": ({"circuit": "c" * (LIMIT + 1)}, "circuit"),
    "empty version": ({"schematic_version": ""}, "schematic_version"),
    "empty node_id": ({"node_id": ""}, "node_id"),
    "NUL in node_id": ({"node_id": "n\x00"}, "node_id"),
    "negative step": ({"step": -1}, "step must be >= 0"),
    "float step": ({"step": 1.0}, "step must be an int"),
    "bool step": ({"step": True}, "step must be an int"),
    "str step": ({"step": "1"}, "step must be an int"),
    "negative timestamp": ({"timestamp_ms": -5}, "timestamp_ms"),
    "unknown outcome kind": ({"outcome_kind": "Exploded"}, "outcome_kind"),
    "NaN payload": ({"payload": float("nan")}, "NaN"),
    "infinite payload": ({"payload": {"x": float("inf")}}, "payload['x']"),
    "negative infinity": ({"payload": [1, float("-inf")]}, "payload[1]"),
    "object payload": ({"payload": {"o": object()}}, "only JSON values"),
    "bytes payload": ({"payload": b"raw"}, "bytes"),
    "set payload": ({"payload": {1, 2}}, "set"),
    "tuple payload": ({"payload": (1, 2)}, "tuple"),
    "int key": ({"payload": {1: "a"}}, "keys must be str"),
    "NUL in payload": ({"payload": {"s": "a\x00"}}, "NUL"),
    "NUL in key": ({"payload": {"k\x00": 1}}, "NUL"),
    "surrogate in payload": ({"payload": ["\udc80"]}, "payload"),
    "int beyond 64 bits": ({"payload": {"n": 2**64}}, "payload"),
    "too deep": ({"payload": _deep(5_000)}, "nested deeper"),
    "deeper than JSON allows": ({"payload": _deep(rules.MAX_JSON_DEPTH + 1)}, "payload"),
    "cyclic payload": ({"payload": _cyclic()}, "payload"),
    "over-size payload": ({"payload": "x" * MAX_PAYLOAD}, "limit is"),
    "wrong payload_hash": ({"payload_hash": "0" * 64}, "payload_hash"),
}


@pytest.mark.parametrize(
    ("changes", "message"), list(BAD_ENVELOPE_FIELDS.values()), ids=list(BAD_ENVELOPE_FIELDS)
)
async def test_bad_envelope_is_invalid_and_stores_nothing(
    store: PersistenceStore, changes: dict[str, Any], message: str
) -> None:
    existing = await new_trace(store, steps=2)
    before = await must_load(store, existing)
    for trace_id in (existing, "fresh-trace"):
        bad = replace(envelope(trace_id, 2), **changes)
        with pytest.raises(InvalidInput) as caught:
            await store.append(bad)
        assert message in str(caught.value)
    assert await must_load(store, existing) == before
    assert await listed_ids(store) == {existing}


async def test_a_payload_at_the_depth_limit_is_accepted(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    payload = _deep(rules.MAX_JSON_DEPTH)
    await store.append(envelope(tid, 1, payload))
    assert (await must_load(store, tid)).events[1].payload == payload


async def test_a_payload_at_the_size_limit_is_accepted(store: PersistenceStore) -> None:
    tid = await new_trace(store)
    payload = "x" * (MAX_PAYLOAD - 2)  # two quotes make it exactly the limit
    await store.append(envelope(tid, 1, payload))
    assert (await must_load(store, tid)).events[1].payload == payload


async def test_not_an_envelope_is_invalid(store: PersistenceStore) -> None:
    with pytest.raises(InvalidInput, match="PersistenceEnvelope"):
        await store.append({"trace_id": "t"})  # type: ignore[arg-type]


BAD_INTERVENTIONS = {
    "empty target": ({"target_node": ""}, "target_node"),
    "NaN override": ({"payload_override": {"x": float("nan")}}, "NaN"),
    "bytes override": ({"payload_override": b"x"}, "bytes"),
    "negative timestamp": ({"timestamp_ms": -1}, "timestamp_ms"),
}


@pytest.mark.parametrize(
    ("changes", "message"), list(BAD_INTERVENTIONS.values()), ids=list(BAD_INTERVENTIONS)
)
async def test_bad_intervention_is_invalid_and_stores_nothing(
    store: PersistenceStore, changes: dict[str, Any], message: str
) -> None:
    tid = await new_trace(store)
    before = await must_load(store, tid)
    with pytest.raises(InvalidInput, match=message):
        await store.save_intervention(tid, replace(intervention("n", 1, 1), **changes))
    assert await must_load(store, tid) == before


BAD_IDS = ["", "t" * (LIMIT + 1), "a\x00b"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=["empty", "long", "NUL"])
async def test_bad_trace_id_is_invalid_on_every_method(store: PersistenceStore, bad: str) -> None:
    calls = [
        store.load(bad),
        store.resume(bad, 0),
        store.complete(bad, CompletionState.SUCCESS),
        store.save_intervention(bad, intervention("n", 1, 1)),
        store.delete(bad),
        store.acquire_lease(bad, "w", 1_000),
        store.get_lease(bad),
    ]
    for call in calls:
        with pytest.raises(InvalidInput, match="trace_id"):
            await call
    assert await listed_ids(store) == set()


@pytest.mark.parametrize("from_step", [-2, 1.0, True, "0", None])
async def test_bad_resume_step_is_invalid(store: PersistenceStore, from_step: object) -> None:
    tid = await new_trace(store, steps=2)
    before = await must_load(store, tid)
    with pytest.raises(InvalidInput, match="from_step"):
        await store.resume(tid, from_step)  # type: ignore[arg-type]
    assert await must_load(store, tid) == before


ODD_IDS = [
    "with 'single' and \"double\" quotes",
    "{braces}:and:colons",
    "ünïcødé-✓-漢字-🙂",
    "glob*chars?[ab]^$",
    "sql'); DROP TABLE ranvier_persistence_state; --",
    "back\\slash/and%percent_under",
    "new\nline\ttab",
    "x" * LIMIT,
    "ranvier:persistence:{other}:events",
]


@pytest.mark.parametrize("odd", ODD_IDS, ids=[f"odd{i}" for i in range(len(ODD_IDS))])
async def test_odd_but_valid_ids_round_trip(store: PersistenceStore, odd: str) -> None:
    sent = PersistenceEnvelope(
        trace_id=odd,
        circuit=odd,
        schematic_version=odd,
        step=0,
        node_id=odd,
        outcome_kind=OutcomeKind.ENTER,
        payload={odd: odd},
        timestamp_ms=1,
    )
    await store.append(sent)
    trace = await must_load(store, odd)
    assert (trace.trace_id, trace.circuit, trace.schematic_version) == (odd, odd, odd)
    assert trace.events == (replace(sent, payload_hash=trace.events[0].payload_hash),)
    assert await listed_ids(store, circuit=odd) == {odd}
    lease = await store.acquire_lease(odd, odd, 60_000)
    assert lease is not None and await store.get_lease(odd) == lease
    await store.save_intervention(odd, intervention(odd, odd, 2))
    await store.resume(odd, 0, fence=lease.token)
    await store.complete(odd, CompletionState.SUCCESS, fence=lease.token)
    assert (await must_load(store, odd)).interventions[0].target_node == odd
    assert await store.delete(odd) is True
    assert await store.load(odd) is None
