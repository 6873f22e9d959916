"""Records of the Redis store to and from the value objects (see `redis_keys`)."""

from __future__ import annotations

import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from operator import itemgetter
from typing import Any

import orjson

from ranvier import rules
from ranvier.model import (
    CompensationRecord,
    CompensationState,
    CompletionState,
    ForkOrigin,
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceSummary,
)

_KINDS = {kind.value: kind for kind in OutcomeKind}
_new = object.__new__
_FIRST = itemgetter(0)
# the slots' own setters: cheaper than object.__setattr__ on a frozen dataclass
_SETTERS = tuple(
    PersistenceEnvelope.__dict__[name].__set__
    for name in (
        "trace_id",
        "circuit",
        "schematic_version",
        "step",
        "outcome_kind",
        "node_id",
        "payload_hash",
        "timestamp_ms",
        "payload",
    )
)


def event_record(envelope: PersistenceEnvelope, payload_json: bytes | None) -> bytes:
    """`[step, kind, node_id, payload_hash, timestamp_ms, version, payload]` as JSON.

    The version is the event's own: after a migration a trace holds events of two."""
    head = orjson.dumps(
        [
            envelope.step,
            envelope.outcome_kind.value,
            envelope.node_id,
            envelope.payload_hash,
            envelope.timestamp_ms,
            envelope.schematic_version,
        ]
    )
    return b"%s,%s]" % (head[:-1], payload_json or b"null")


def record_head(record: bytes) -> tuple[str, str | None, str | None]:
    """The (kind, node, hash) an existing step was stored with, for rules.check_reappend."""
    _, kind, node, digest, *_ = orjson.loads(record)
    return kind, node, digest


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cyclic GC while a trace is decoded: every object made survives, so each
    young collection it triggers would promote them and soon walk the whole heap, which
    dominates the decode of a long trace. Decoding makes no cycles to collect."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _events(
    ident: tuple[str, str], records: Sequence[bytes], *, by_step: bool
) -> list[PersistenceEnvelope]:
    """Envelopes from event records in one JSON parse, by step or in stored order."""
    trace_id, circuit = ident
    s_id, s_circuit, s_version, s_step, s_kind, s_node, s_hash, s_ts, s_payload = _SETTERS
    kinds, envelopes = _KINDS, []
    rows = orjson.loads(b"[%s]" % b",".join(records))
    if by_step:
        rows.sort(key=_FIRST)  # int keys: timsort's fast path, unlike rows.sort()
    for step, kind, node, digest, ts, version, payload in rows:
        env = _new(PersistenceEnvelope)
        s_id(env, trace_id)
        s_circuit(env, circuit)
        s_version(env, version)
        s_step(env, step)
        s_kind(env, kinds[kind])
        s_node(env, node)
        s_hash(env, digest)
        s_ts(env, ts)
        s_payload(env, payload)
        envelopes.append(env)
    return envelopes


def intervention_record(intervention: Intervention, payload_json: bytes | None) -> bytes:
    """`[target_node, timestamp_ms, payload_override]` as JSON."""
    head = orjson.dumps([intervention.target_node, intervention.timestamp_ms])
    return b"%s,%s]" % (head[:-1], payload_json or b"null")


def _interventions(records: Sequence[bytes]) -> tuple[Intervention, ...]:
    return tuple(
        Intervention(target_node=target, payload_override=payload, timestamp_ms=ts)
        for target, ts, payload in orjson.loads(b"[%s]" % b",".join(records))
    )


def _opt_int(value: bytes | None) -> int | None:
    return None if value is None or value == b"" else int(value)


def _origin(state: dict[bytes, bytes]) -> ForkOrigin | None:
    source = state.get(b"forked_from")
    if source is None:
        return None
    return ForkOrigin(trace_id=source.decode(), step=int(state[b"forked_at"]))


def trace_from_reply(
    state: dict[bytes, bytes],
    events: Sequence[bytes],
    superseded: Sequence[bytes],
    interventions: Sequence[bytes],
) -> PersistedTrace:
    """A PersistedTrace from its state hash, event records and intervention records."""
    completion = state.get(b"completion")
    ident = (state[b"id"].decode(), state[b"circuit"].decode())
    with _collector_paused():
        live = _events(ident, events, by_step=True)
        gone = _events(ident, superseded, by_step=False)
    return PersistedTrace(
        trace_id=ident[0],
        circuit=ident[1],
        schematic_version=state[b"version"].decode(),
        events=tuple(live),
        interventions=_interventions(interventions),
        resumed_from_step=_opt_int(state.get(b"resumed")),
        completion=None if completion is None else CompletionState(completion.decode()),
        created_at_ms=int(state[b"created"]),
        updated_at_ms=int(state[b"updated"]),
        completed_at_ms=_opt_int(state.get(b"completed")),
        superseded_events=tuple(gone),
        input=rules.decode_payload(state.get(b"input")),
        attempts=int(state.get(b"attempts", 0)),
        forked_from=_origin(state),
    )


def pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    """A flat [field, value, ...] reply (HGETALL inside Lua) as a dict."""
    it = iter(flat)
    return dict(zip(it, it, strict=True))


def state_fields(trace: PersistedTrace, input_json: bytes | None) -> list[bytes]:
    """The state hash of an imported trace (its input as canonical JSON), as field/value
    pairs; a field whose value is None (or attempts 0) is left out, as a write would."""
    last = max((e.step for e in trace.events), default=-1)
    origin = trace.forked_from
    fields: dict[str, str | int | None] = {
        "id": trace.trace_id,
        "circuit": trace.circuit,
        "version": trace.schematic_version,
        "created": trace.created_at_ms,
        "updated": trace.updated_at_ms,
        "last": last,
        "resumed": trace.resumed_from_step,
        "completion": None if trace.completion is None else trace.completion.value,
        "completed": trace.completed_at_ms,
        "attempts": trace.attempts or None,
        "forked_from": None if origin is None else origin.trace_id,
        "forked_at": None if origin is None else origin.step,
    }
    flat: list[bytes] = []
    for name, value in fields.items():
        if value is not None:
            flat += [name.encode(), str(value).encode()]
    if input_json is not None:
        flat += [b"input", input_json]
    return flat


def summary_from_reply(reply: Sequence[Any]) -> TraceSummary:
    """A TraceSummary from the SUMMARY script's reply (state fields, HLEN, lease, now)."""
    state, count, lease_exp, now = reply
    tid, circuit, version, completion, completed, created, updated, resumed, last, tries = state
    done = None if completion is None else CompletionState(completion.decode())
    live = rules.lease_is_live(int(lease_exp), int(now))
    last_step = int(last)
    return TraceSummary(
        trace_id=tid.decode(),
        circuit=circuit.decode(),
        schematic_version=version.decode(),
        status=rules.trace_status(done, live),
        completion=done,
        last_step=None if last_step < 0 else last_step,
        event_count=int(count),
        resumed_from_step=_opt_int(resumed),
        created_at_ms=int(created),
        updated_at_ms=int(updated),
        completed_at_ms=_opt_int(completed),
        attempts=0 if tries is None else int(tries),
    )


def compensation_from_value(key: str, value: bytes) -> CompensationRecord:
    state, claimed, compensated, _ = value.split(b"\0", 3)
    return CompensationRecord(
        key=key,
        state=CompensationState(state.decode()),
        claimed_at_ms=int(claimed),
        compensated_at_ms=_opt_int(compensated),
    )


def compensation_value(record: CompensationRecord) -> bytes:
    """`state \0 claimed_ms \0 compensated_ms \0` (a claim's request id left empty)."""
    done = b"" if record.compensated_at_ms is None else b"%d" % record.compensated_at_ms
    return b"%s\0%d\0%s\0" % (record.state.value.encode(), record.claimed_at_ms, done)


def import_args(prepared: rules.PreparedTrace, ttl: str) -> list[str | bytes]:
    """The IMPORT script's ARGV: the TTL, then four counted groups of records."""
    events: list[bytes] = []
    for p in prepared.events:
        events += [b"%d" % p.envelope.step, event_record(p.envelope, p.payload_json)]
    superseded = [event_record(p.envelope, p.payload_json) for p in prepared.superseded]
    interventions = [
        intervention_record(i, data)
        for i, data in zip(prepared.trace.interventions, prepared.interventions, strict=True)
    ]
    args: list[str | bytes] = [ttl]
    state = state_fields(prepared.trace, prepared.input_json)
    for group in (state, events, superseded, interventions):
        args += [str(len(group)), *group]
    return args
