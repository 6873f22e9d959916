"""The Redis store: one Lua script per write, all of a trace's keys on one hash slot.

Key shapes are in `keys`, scripts in `scripts`, record codecs in `rows`, coalescing and
error translation in `batch`, URLs and pools in `connection`, SCAN walks (listing,
counting, purging) in `scan`, leases in `leases`, the schema marker and `describe` in
`schema`. Every rule is decided by `ranvier.rules`: a script that finds a reason to
refuse writes nothing and returns what it found, and Python raises through the rule.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any, Self

from ranvier import rules
from ranvier.errors import RanvierError, RestoreConflict, TraceNotFound
from ranvier.model import (
    CompletionState,
    Intervention,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    StoreDescription,
    TracePage,
    TraceStatus,
    TraceSummary,
)
from ranvier.stores.base import StoreCapabilities
from ranvier.stores.closing import ClosesOnExit
from ranvier.stores.redis import keys as k
from ranvier.stores.redis import rows as codec
from ranvier.stores.redis import schema
from ranvier.stores.redis import scripts as lua
from ranvier.stores.redis.batch import AnyRedis, Script, ScriptRunner, translate
from ranvier.stores.redis.compensation import RedisCompensationIdempotencyStore, ttl_arg
from ranvier.stores.redis.connection import client_from_url, location, parse_url
from ranvier.stores.redis.leases import ACQUIRE, GET_LEASE, RedisLeases, request_id
from ranvier.stores.redis.scan import (
    CompletedStep,
    ScanPosition,
    SortedPager,
    completed_before,
    earliest,
    nodes_of,
    status_tallies,
)

_APPEND, _RESUME = Script(lua.APPEND), Script(lua.RESUME)
_COMPLETE, _INTERVENE = Script(lua.COMPLETE), Script(lua.INTERVENE)
_SUMMARY, _PURGE = Script(lua.SUMMARY), Script(lua.PURGE)
_DELETE, _IMPORT, _LOAD = Script(lua.DELETE), Script(lua.IMPORT), Script(lua.LOAD)
SCRIPTS = (_APPEND, _RESUME, _COMPLETE, _INTERVENE, _SUMMARY, ACQUIRE, GET_LEASE)
"""Preloaded on connect (the others are loaded on first use, after a NOSCRIPT)."""
_STATUS = {"running": TraceStatus.RUNNING, "interrupted": TraceStatus.INTERRUPTED}


def _opt_int(value: bytes | None) -> int | None:
    return None if not value else int(value)


class RedisPersistenceStore(RedisLeases, ClosesOnExit):
    """Checkpoints in Redis or Redis Cluster; durable as far as the server's AOF is."""

    adapter = "redis"
    capabilities = StoreCapabilities(durable=True, multi_process=True)

    def __init__(
        self,
        client: AnyRedis,
        *,
        prefix: str = k.DEFAULT_PREFIX,
        ttl_seconds: int | None = None,
        max_payload_bytes: int = rules.DEFAULT_MAX_PAYLOAD_BYTES,
        owns_client: bool = False,
        location: str | None = None,
    ) -> None:
        """A store on an existing redis-py asyncio client (`Redis` or `RedisCluster`)."""
        self._client = client
        self._prefix = k.validate_prefix(prefix)
        self._ttl = ttl_arg(ttl_seconds)
        self._max_payload_bytes = rules.validate_positive("max_payload_bytes", max_payload_bytes)
        self._owns_client = owns_client
        self._location = location
        self._runner = ScriptRunner(client)
        self._compensations = RedisCompensationIdempotencyStore(
            client, prefix=prefix, ttl_seconds=ttl_seconds, runner=self._runner
        )
        self._token_pages = SortedPager()

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        prefix: str | None = None,
        ttl_seconds: int | None = None,
        max_payload_bytes: int | None = None,
        **client_options: Any,
    ) -> Self:
        """Connect to `redis://`, `rediss://`, `redis+cluster://h1:p1,h2:p2` or
        `rediss+cluster://` and check that the server answers; nothing is written.

        The store's options may be in the URL's query (`?prefix=app&ttl_seconds=86400`), as
        may the client's `max_connections`, `pool_timeout` and `socket_timeout`; keywords
        win. Other keywords go to redis-py's client.
        """
        parsed = parse_url(url)
        given = {
            "prefix": prefix,
            "ttl_seconds": ttl_seconds,
            "max_payload_bytes": max_payload_bytes,
        }
        options = {**parsed.store_options, **{n: v for n, v in given.items() if v is not None}}
        k.validate_prefix(options.setdefault("prefix", k.DEFAULT_PREFIX))  # before connecting
        ttl_arg(options.get("ttl_seconds"))
        client = client_from_url(parsed.url, **{**parsed.client_options, **client_options})
        try:
            store = cls(client, owns_client=True, location=rules.masked_url(url), **options)
            await store._preload()
        except BaseException:
            with translate():
                await client.aclose()
            raise
        return store

    @classmethod
    def with_prefix_and_ttl(cls, client: AnyRedis, prefix: str, ttl_seconds: int | None) -> Self:
        """The runbook's form: keys under `prefix`, each trace expiring `ttl_seconds` after
        its last write."""
        return cls(client, prefix=prefix, ttl_seconds=ttl_seconds)

    @property
    def prefix(self) -> str:
        return self._prefix

    @property
    def client(self) -> AnyRedis:
        return self._client

    @property
    def compensations(self) -> RedisCompensationIdempotencyStore:
        return self._compensations

    async def _preload(self) -> None:
        """Checks the server answers, and loads the hot scripts (no key is written)."""
        with translate():
            for script in SCRIPTS:
                await self._client.script_load(script.source)

    async def ensure_schema(self) -> None:
        """Writes the layout's version marker (`<prefix>:schema`), the only key Redis
        needs created; `SchemaMismatch` if a newer ranvier wrote the keys."""
        await self._preload()
        await schema.ensure(self._client, self._prefix)

    async def _run(self, script: Script, trace_id: str, args: Sequence[str | bytes]) -> Any:
        return await self._runner.run(script, k.trace_keys(self._prefix, trace_id), args)

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        prepared = rules.prepare_envelope(envelope, max_payload_bytes=self._max_payload_bytes)
        env = prepared.envelope
        record = codec.event_record(env, prepared.payload_json)
        reply = await self._run(
            _APPEND,
            env.trace_id,
            (
                env.trace_id,
                env.circuit,
                env.schematic_version,
                str(env.step),
                record,
                "" if fence is None else str(fence),
                self._ttl,
            ),
        )
        if reply != 1:
            self._refused(env.trace_id, reply, envelope=env, fence=fence)

    def _refused(
        self,
        trace_id: str,
        reply: list[Any],
        *,
        envelope: PersistenceEnvelope | None = None,
        fence: int | None = None,
        from_step: int | None = None,
    ) -> None:
        """Raise through the rule that a script's refusal reply names (or return: a no-op)."""
        code, *data = reply
        if code == b"fence":
            token, expires, now = (_opt_int(v) for v in data)
            rules.check_fence(trace_id, fence, token, expires, now or 0)
        elif code == b"missing":
            raise TraceNotFound(f"no trace is stored under {trace_id!r}")
        elif code == b"completed":
            rules.check_open(trace_id, data[0].decode())
        elif code == b"circuit" and envelope is not None:
            rules.check_circuit(data[0].decode(), envelope)
        elif code == b"exists" and envelope is not None:
            rules.check_reappend(*codec.record_head(data[0]), envelope)
            return
        elif code == b"step":
            rules.check_resume_step(trace_id, from_step, int(data[0]))
        raise RanvierError(f"the redis store refused a write for trace {trace_id!r}: {reply!r}")

    async def load(self, trace_id: str) -> PersistedTrace | None:
        rules.validate_id("trace_id", trace_id)
        state, events, superseded, interventions, _ = k.trace_keys(self._prefix, trace_id)
        # one round trip, one consistent snapshot: MULTI on the trace's slot
        fields, records, gone, ivs = await self._runner.transaction(
            (
                ("HGETALL", state),
                ("HVALS", events),
                ("LRANGE", superseded, 0, -1),
                ("LRANGE", interventions, 0, -1),
            )
        )
        if not fields:
            return None
        state_map = fields if isinstance(fields, dict) else codec.pairs(fields)
        return codec.trace_from_reply(state_map, records, gone, ivs)

    async def resume(
        self, trace_id: str, from_step: int, *, fence: int | None = None
    ) -> ResumeCursor:
        rules.validate_id("trace_id", trace_id)
        step = rules.validate_step(from_step, what="from_step", minimum=-1)
        fence_arg = "" if fence is None else str(fence)
        reply = await self._run(_RESUME, trace_id, (str(step), fence_arg, self._ttl))
        if reply[0] != b"ok":
            self._refused(trace_id, reply, fence=fence, from_step=step)
        return ResumeCursor(trace_id=trace_id, next_step=step + 1)

    async def complete(
        self, trace_id: str, state: CompletionState, *, fence: int | None = None
    ) -> None:
        state = rules.validate_completion(state)
        rules.validate_id("trace_id", trace_id)
        fence_arg = "" if fence is None else str(fence)
        expected = ""  # compare-and-set from "not completed"; the rule decides on a miss
        while True:
            args = (expected, state.value, fence_arg, self._ttl)
            reply = await self._run(_COMPLETE, trace_id, args)
            if reply[0] == b"ok":
                return
            if reply[0] != b"changed":
                self._refused(trace_id, reply, fence=fence)
            current = reply[1].decode() or None
            if not rules.completion_change(trace_id, current, state):
                return
            expected = current or ""

    async def save_intervention(self, trace_id: str, intervention: Intervention) -> None:
        data = rules.prepare_intervention(intervention, max_payload_bytes=self._max_payload_bytes)
        rules.validate_id("trace_id", trace_id)
        record = codec.intervention_record(intervention, data)
        reply = await self._run(_INTERVENE, trace_id, (record, request_id(), self._ttl))
        if reply[0] != b"ok":
            self._refused(trace_id, reply)

    async def list_traces(
        self,
        *,
        status: TraceStatus | None = None,
        circuit: str | None = None,
        updated_before_ms: int | None = None,
        min_attempts: int | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> TracePage:
        wanted, text = rules.validate_list_query(
            status, circuit, updated_before_ms, limit, cursor, min_attempts
        )
        position = ScanPosition.decode(text, cursor)
        nodes = await nodes_of(self._client)
        pattern = k.state_pattern(self._prefix)
        items: list[TraceSummary] = []
        while len(items) < limit and await position.refill(self._client, nodes, pattern):
            chunk = position.pending[: max(limit - len(items), 32)]
            summaries = await self._summaries(chunk)
            for used, summary in enumerate(summaries, start=1):
                if summary is None or (circuit is not None and summary.circuit != circuit):
                    continue
                if updated_before_ms is not None and summary.updated_at_ms >= updated_before_ms:
                    continue
                if min_attempts is not None and summary.attempts < min_attempts:
                    continue
                if rules.status_matches(wanted, summary.status):
                    items.append(summary)
                    if len(items) == limit:
                        position.pending = position.pending[used:]
                        break
            else:
                position.pending = position.pending[len(chunk) :]
        done = position.done(len(nodes))
        return TracePage(items=tuple(items), next_cursor=None if done else position.encode())

    async def _summaries(self, state_keys: list[str]) -> list[TraceSummary | None]:
        replies = await self._each(_SUMMARY, state_keys, ())
        return [None if r is None else codec.summary_from_reply(r) for r in replies]

    async def purge_completed(
        self, cutoff_ms: int, *, batch_size: int = 500, limit: int | None = None
    ) -> int:
        rules.validate_positive("batch_size", batch_size, maximum=rules.MAX_BATCH_SIZE)
        if limit is not None:
            rules.validate_positive("limit", limit)
        old = self._completed_before(cutoff_ms, "old")
        if limit is None:  # each walk step's traces at once: memory stays bounded
            return sum([await self._purge(keys, cutoff_ms, batch_size) async for _, keys in old])
        return await self._purge(await earliest(old, limit), cutoff_ms, batch_size)

    async def _purge(self, found: list[tuple[int, str]], cutoff_ms: int, batch_size: int) -> int:
        purged = 0
        for start in range(0, len(found), batch_size):
            batch = [key for _, key in found[start : start + batch_size]]
            purged += sum(await self._each(_PURGE, batch, (str(cutoff_ms),)))
        return purged

    async def count_completed_before(self, cutoff_ms: int) -> int:
        return sum([n async for n, _ in self._completed_before(cutoff_ms, "before")])

    def _completed_before(self, cutoff_ms: int, mode: str) -> AsyncIterator[CompletedStep]:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        return completed_before(self._runner, k.state_pattern(self._prefix), cutoff_ms, mode)

    async def count_traces_by_status(self) -> dict[TraceStatus, int]:
        counts: Counter[TraceStatus] = Counter()
        async for name, n in status_tallies(self._runner, k.state_pattern(self._prefix)):
            counts[_STATUS.get(name) or rules.trace_status(name, False)] += n
        return rules.full_counts(counts)

    async def load_many(self, trace_ids: Sequence[str]) -> list[PersistedTrace]:
        for trace_id in trace_ids:
            rules.validate_id("trace_id", trace_id)
        calls = [self._runner.submit(_LOAD, k.trace_keys(self._prefix, t), ()) for t in trace_ids]
        return [
            codec.trace_from_reply(codec.pairs(state), events, gone, ivs)
            for state, events, gone, ivs in await asyncio.gather(*calls)
            if state
        ]

    async def describe(self) -> StoreDescription:
        """Read-only: the marker's version (None on an empty prefix), key shapes, and the
        settings doctor judges (None where the server refuses CONFIG or INFO)."""
        where = self._location or location(self._client)
        return await schema.describe(self._runner, self._prefix, self._ttl, where)

    async def _each(
        self, script: Script, state_keys: list[str], args: tuple[str, ...]
    ) -> list[Any]:
        """Run `script` once per trace, all in one pipelined batch."""
        calls = [self._runner.submit(script, k.keys_of_state_key(key), args) for key in state_keys]
        return list(await asyncio.gather(*calls))

    async def delete(self, trace_id: str) -> bool:
        rules.validate_id("trace_id", trace_id)
        return bool(await self._run(_DELETE, trace_id, ()))

    async def import_trace(self, trace: PersistedTrace) -> bool:
        prepared = rules.prepare_trace(trace, max_payload_bytes=self._max_payload_bytes)
        trace = prepared.trace
        existing = await self.load(trace.trace_id)
        if existing is None:
            if await self._run(_IMPORT, trace.trace_id, codec.import_args(prepared, self._ttl)):
                return True
            existing = await self.load(trace.trace_id)  # written meanwhile by another
        if existing is not None and rules.trace_digest(existing) == rules.trace_digest(trace):
            return False
        raise RestoreConflict(
            f"trace {trace.trace_id!r} is already stored with different content; "
            "delete it first to restore the backup's version"
        )

    async def now_ms(self) -> int:
        with translate():
            seconds, micros = await self._client.time()
        return int(seconds) * 1000 + int(micros) // 1000

    async def close(self) -> None:
        await self._runner.close()
        if self._owns_client:
            with translate():
                await self._client.aclose()


async def from_url(url: str, **options: Any) -> RedisPersistenceStore:
    """For `open_store` (which writes the schema marker unless `ensure_schema=False`): the
    options of `connect`, in the URL's query or as keywords."""
    return await RedisPersistenceStore.connect(url, **options)
