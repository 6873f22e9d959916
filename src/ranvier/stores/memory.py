"""The in-memory store: a real implementation of the contract, scoped to one process.

Every method runs without awaiting between its checks and its writes, so concurrent
asyncio tasks see each write as atomic. Payloads are kept as canonical JSON so that a
caller mutating its object afterwards cannot change what was stored.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from ranvier import rules
from ranvier.errors import TraceNotFound
from ranvier.model import (
    CompensationRecord,
    CompensationState,
    CompletionState,
    ForkOrigin,
    Intervention,
    Lease,
    LeaseToken,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    StoreDescription,
    TracePage,
    TraceStart,
    TraceStatus,
    TraceSummary,
    now_ms,
)
from ranvier.stores.base import StoreCapabilities
from ranvier.stores.closing import ClosesOnExit

_Event = rules.PreparedEnvelope
"""A stored event: the validated envelope (whose payload may be the caller's object,
so loads decode the canonical JSON), its hash and kind (the envelope is not copied)."""


def _materialize(event: _Event) -> PersistenceEnvelope:
    data = event.payload_json
    return replace(
        event.source,
        payload=None if data is None else rules.decode_payload(data),
        payload_hash=event.payload_hash,
        outcome_kind=event.outcome_kind,
    )


@dataclass(slots=True)
class _Trace:
    circuit: str
    schematic_version: str
    created_at_ms: int
    updated_at_ms: int
    completion: CompletionState | None = None
    completed_at_ms: int | None = None
    resumed_from_step: int | None = None
    events: dict[int, _Event] = field(default_factory=dict)
    superseded: list[_Event] = field(default_factory=list)
    interventions: list[tuple[Intervention, bytes | None]] = field(default_factory=list)
    input_json: bytes | None = None
    attempts: int = 0
    forked_from: ForkOrigin | None = None

    def last_step(self) -> int | None:
        return max(self.events) if self.events else None


@dataclass(slots=True)
class _LeaseRow:
    holder: str | None
    token: int
    expires_at_ms: int


class InMemoryCompensationIdempotencyStore:
    """Compensation keys in a dict."""

    def __init__(self) -> None:
        self._records: dict[str, CompensationRecord] = {}

    async def claim(self, key: str) -> bool:
        rules.validate_id("compensation key", key)
        if key in self._records:
            return False
        self._records[key] = CompensationRecord(
            key=key, state=CompensationState.CLAIMED, claimed_at_ms=now_ms()
        )
        return True

    async def mark_compensated(self, key: str) -> None:
        rules.validate_id("compensation key", key)
        record = self._records.get(key)
        if record is not None and record.state is CompensationState.COMPENSATED:
            return
        now = now_ms()
        self._records[key] = CompensationRecord(
            key=key,
            state=CompensationState.COMPENSATED,
            claimed_at_ms=now if record is None else record.claimed_at_ms,
            compensated_at_ms=now,
        )

    async def was_compensated(self, key: str) -> bool:
        record = await self.get(key)
        return record is not None and record.state is CompensationState.COMPENSATED

    async def get(self, key: str) -> CompensationRecord | None:
        rules.validate_id("compensation key", key)
        return self._records.get(key)

    async def release(self, key: str) -> bool:
        record = await self.get(key)
        if record is None or record.state is not CompensationState.CLAIMED:
            return False
        del self._records[key]
        return True

    async def list_unfinished(self, *, limit: int = 100) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        unfinished = [r for r in self._records.values() if r.state is CompensationState.CLAIMED]
        unfinished.sort(key=lambda r: (r.claimed_at_ms, r.key))
        return unfinished[:limit]

    def _purgeable(self, cutoff_ms: int) -> list[str]:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        return [
            k
            for k, r in self._records.items()
            if r.compensated_at_ms is not None and r.compensated_at_ms < cutoff_ms
        ]

    async def count_older_than_ms(self, cutoff_ms: int) -> int:
        return len(self._purgeable(cutoff_ms))

    async def purge_older_than_ms(self, cutoff_ms: int) -> int:
        old = self._purgeable(cutoff_ms)
        for key in old:
            del self._records[key]
        return len(old)

    async def list_records(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        return [self._records[k] for k in rules.page_after(self._records, after, limit)]

    async def import_record(self, record: CompensationRecord) -> bool:
        merged = rules.merged_record(self._records.get(record.key), record)
        if merged is None:
            return False
        self._records[merged.key] = merged
        return True


class InMemoryPersistenceStore(ClosesOnExit):
    """The contract in plain dicts: fast, exact, gone with the process."""

    adapter = "memory"
    capabilities = StoreCapabilities(durable=False, multi_process=False)

    def __init__(self, *, max_payload_bytes: int = rules.DEFAULT_MAX_PAYLOAD_BYTES) -> None:
        self._max_payload_bytes = rules.validate_positive("max_payload_bytes", max_payload_bytes)
        self._traces: dict[str, _Trace] = {}
        self._leases: dict[str, _LeaseRow] = {}
        self._compensations = InMemoryCompensationIdempotencyStore()

    @property
    def compensations(self) -> InMemoryCompensationIdempotencyStore:
        return self._compensations

    async def ensure_schema(self) -> None:
        return None

    def _check_fence(self, trace_id: str, fence: int | None) -> None:
        if fence is not None:
            row = self._leases.get(trace_id)
            token, expires = (None, None) if row is None else (row.token, row.expires_at_ms)
            rules.check_fence(trace_id, fence, token, expires, now_ms())

    def _trace(self, trace_id: str) -> _Trace:
        rules.validate_id("trace_id", trace_id)
        trace = self._traces.get(trace_id)
        if trace is None:
            raise TraceNotFound(f"no trace is stored under {trace_id!r}")
        return trace

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        prepared = rules.prepare_envelope(envelope, max_payload_bytes=self._max_payload_bytes)
        tid = envelope.trace_id
        if fence is not None:
            self._check_fence(tid, fence)
        trace = self._traces.get(tid)
        if trace is None:
            now = now_ms()
            trace = self._traces[tid] = _Trace(
                envelope.circuit, envelope.schematic_version, now, now
            )
        else:
            if trace.circuit != envelope.circuit:
                rules.check_circuit(trace.circuit, envelope)
            if trace.completion is not None:
                rules.check_open(tid, trace.completion)
            stored = trace.events.get(envelope.step)
            if stored is not None:
                rules.check_reappend(
                    stored.outcome_kind.value,
                    stored.source.node_id,
                    stored.payload_hash,
                    prepared.envelope,
                )
                return
            now = now_ms()
        trace.events[envelope.step] = prepared
        trace.updated_at_ms = now

    async def load(self, trace_id: str) -> PersistedTrace | None:
        rules.validate_id("trace_id", trace_id)
        trace = self._traces.get(trace_id)
        if trace is None:
            return None
        interventions = tuple(
            replace(i, payload_override=rules.decode_payload(data))
            for i, data in trace.interventions
        )
        return PersistedTrace(
            trace_id=trace_id,
            circuit=trace.circuit,
            schematic_version=trace.schematic_version,
            events=tuple(_materialize(trace.events[s]) for s in sorted(trace.events)),
            interventions=interventions,
            resumed_from_step=trace.resumed_from_step,
            completion=trace.completion,
            created_at_ms=trace.created_at_ms,
            updated_at_ms=trace.updated_at_ms,
            completed_at_ms=trace.completed_at_ms,
            superseded_events=tuple(_materialize(e) for e in trace.superseded),
            input=rules.decode_payload(trace.input_json),
            attempts=trace.attempts,
            forked_from=trace.forked_from,
        )

    async def resume(
        self, trace_id: str, from_step: int, *, fence: int | None = None
    ) -> ResumeCursor:
        trace = self._trace(trace_id)
        rules.check_open(trace_id, trace.completion)
        step = rules.check_resume_step(trace_id, from_step, trace.last_step())
        self._check_fence(trace_id, fence)
        for later in sorted(s for s in trace.events if s > step):
            trace.superseded.append(trace.events.pop(later))
        trace.resumed_from_step = step
        trace.updated_at_ms = now_ms()
        return ResumeCursor(trace_id=trace_id, next_step=step + 1)

    async def complete(
        self, trace_id: str, state: CompletionState, *, fence: int | None = None
    ) -> None:
        state = rules.validate_completion(state)
        trace = self._trace(trace_id)
        if not rules.completion_change(trace_id, trace.completion, state):
            return
        self._check_fence(trace_id, fence)
        trace.completion = state
        trace.completed_at_ms = trace.updated_at_ms = now_ms()
        if fence is not None:  # the fence held: its lease is released with the completion
            row = self._leases[trace_id]
            row.holder, row.expires_at_ms = None, 0

    async def save_intervention(self, trace_id: str, intervention: Intervention) -> None:
        data = rules.prepare_intervention(intervention, max_payload_bytes=self._max_payload_bytes)
        trace = self._trace(trace_id)
        rules.check_open(trace_id, trace.completion)
        trace.interventions.append((replace(intervention, payload_override=None), data))
        trace.updated_at_ms = now_ms()

    def _summary(self, trace_id: str, trace: _Trace, now: int) -> TraceSummary:
        lease = self._leases.get(trace_id)
        live = lease is not None and rules.lease_is_live(lease.expires_at_ms, now)
        return TraceSummary(
            trace_id=trace_id,
            circuit=trace.circuit,
            schematic_version=trace.schematic_version,
            status=rules.trace_status(trace.completion, live),
            completion=trace.completion,
            last_step=trace.last_step(),
            event_count=len(trace.events),
            resumed_from_step=trace.resumed_from_step,
            created_at_ms=trace.created_at_ms,
            updated_at_ms=trace.updated_at_ms,
            completed_at_ms=trace.completed_at_ms,
            attempts=trace.attempts,
        )

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
        wanted, after = rules.validate_list_query(
            status, circuit, updated_before_ms, limit, cursor, min_attempts
        )
        now = now_ms()
        items: list[TraceSummary] = []
        for trace_id in sorted(self._traces):
            if after is not None and trace_id <= after:
                continue
            trace = self._traces[trace_id]
            if circuit is not None and trace.circuit != circuit:
                continue
            if updated_before_ms is not None and trace.updated_at_ms >= updated_before_ms:
                continue
            if min_attempts is not None and trace.attempts < min_attempts:
                continue
            summary = self._summary(trace_id, trace, now)
            if not rules.status_matches(wanted, summary.status):
                continue
            items.append(summary)
            if len(items) == limit:
                return TracePage(items=tuple(items), next_cursor=rules.encode_cursor(trace_id))
        return TracePage(items=tuple(items), next_cursor=None)

    def _completed_before(self, cutoff_ms: int) -> list[str]:
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        done = [
            (trace.completed_at_ms, trace_id)
            for trace_id, trace in self._traces.items()
            if trace.completed_at_ms is not None and trace.completed_at_ms < cutoff_ms
        ]
        return [trace_id for _, trace_id in sorted(done)]

    async def count_completed_before(self, cutoff_ms: int) -> int:
        return len(self._completed_before(cutoff_ms))

    async def purge_completed(
        self, cutoff_ms: int, *, batch_size: int = 500, limit: int | None = None
    ) -> int:
        rules.validate_positive("batch_size", batch_size, maximum=rules.MAX_BATCH_SIZE)
        if limit is not None:
            rules.validate_positive("limit", limit)
        old = self._completed_before(cutoff_ms)[:limit]
        for trace_id in old:
            del self._traces[trace_id]
            self._leases.pop(trace_id, None)
        return len(old)

    async def delete(self, trace_id: str) -> bool:
        rules.validate_id("trace_id", trace_id)
        self._leases.pop(trace_id, None)
        return self._traces.pop(trace_id, None) is not None

    async def count_traces_by_status(self) -> dict[TraceStatus, int]:
        now = now_ms()
        tally = Counter(self._summary(t, trace, now).status for t, trace in self._traces.items())
        return rules.full_counts(tally)

    async def load_many(self, trace_ids: Sequence[str]) -> list[PersistedTrace]:
        loaded = [await self.load(trace_id) for trace_id in trace_ids]
        return [trace for trace in loaded if trace is not None]

    async def describe(self) -> StoreDescription:
        return StoreDescription(
            adapter=self.adapter,
            location="memory://",
            schema_version=None,
            latest_schema_version=None,
            objects=(),
            settings={"durable": False},
        )

    async def list_lease_tokens(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[LeaseToken]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        ids = rules.page_after(self._leases, after, limit)
        return [LeaseToken(trace_id=t, token=self._leases[t].token) for t in ids]

    async def raise_lease_token(self, trace_id: str, token: int) -> None:
        rules.validate_token(LeaseToken(trace_id=trace_id, token=token))
        row = self._leases.get(trace_id)
        if row is None:
            self._leases[trace_id] = _LeaseRow(None, token, 0)
        elif row.token < token:
            row.holder, row.token, row.expires_at_ms = None, token, 0

    async def import_trace(self, trace: PersistedTrace) -> bool:
        prepared = rules.prepare_trace(trace, max_payload_bytes=self._max_payload_bytes)
        trace = prepared.trace
        if not rules.restore_is_new(await self.load(trace.trace_id), trace):
            return False
        row = _Trace(
            circuit=trace.circuit,
            schematic_version=trace.schematic_version,
            created_at_ms=trace.created_at_ms,
            updated_at_ms=trace.updated_at_ms,
            completion=None if trace.completion is None else CompletionState(trace.completion),
            completed_at_ms=trace.completed_at_ms,
            resumed_from_step=trace.resumed_from_step,
            input_json=prepared.input_json,
            attempts=trace.attempts,
            forked_from=trace.forked_from,
            interventions=[
                (replace(i, payload_override=None), data)
                for i, data in zip(trace.interventions, prepared.interventions, strict=True)
            ],
        )
        for p in prepared.events:
            row.events[p.source.step] = _Event(replace(p.envelope, payload=None), p.payload_json)
        row.superseded = [
            _Event(replace(p.envelope, payload=None), p.payload_json) for p in prepared.superseded
        ]
        self._traces[trace.trace_id] = row
        return True

    async def acquire_lease(
        self, trace_id: str, holder: str, ttl_ms: int, *, start: TraceStart | None = None
    ) -> Lease | None:
        ttl_ms = rules.validate_lease_request(trace_id, holder, ttl_ms)
        begin = rules.prepare_start(start, max_payload_bytes=self._max_payload_bytes)
        now = now_ms()
        row = self._leases.get(trace_id)
        if row is not None and rules.lease_is_live(row.expires_at_ms, now):
            return None
        token = 1 if row is None else row.token + 1
        self._leases[trace_id] = _LeaseRow(holder, token, now + ttl_ms)
        trace = self._traces.get(trace_id)
        if trace is None and begin is not None:
            trace = self._traces[trace_id] = _Trace(
                begin.start.circuit,
                begin.start.schematic_version,
                now,
                now,
                input_json=begin.input_json,
            )
        if trace is not None and trace.completion is None:
            trace.attempts += 1
        return Lease(trace_id=trace_id, holder=holder, token=token, expires_at_ms=now + ttl_ms)

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        ttl_ms = rules.validate_lease_request(lease.trace_id, lease.holder, ttl_ms)
        now = now_ms()
        row = self._leases.get(lease.trace_id)
        token, expires = (None, None) if row is None else (row.token, row.expires_at_ms)
        rules.check_fence(lease.trace_id, lease.token, token, expires, now)
        assert row is not None
        row.expires_at_ms = now + ttl_ms
        return replace(lease, expires_at_ms=row.expires_at_ms)

    async def release_lease(self, lease: Lease) -> bool:
        rules.validate_id("trace_id", lease.trace_id)
        row = self._leases.get(lease.trace_id)
        if row is None or row.token != lease.token or row.holder is None:
            return False
        live = rules.lease_is_live(row.expires_at_ms, now_ms())
        row.holder, row.expires_at_ms = None, 0
        return live

    async def get_lease(self, trace_id: str) -> Lease | None:
        rules.validate_id("trace_id", trace_id)
        row = self._leases.get(trace_id)
        if row is None or row.holder is None:
            return None
        if not rules.lease_is_live(row.expires_at_ms, now_ms()):
            return None
        return Lease(
            trace_id=trace_id, holder=row.holder, token=row.token, expires_at_ms=row.expires_at_ms
        )

    async def now_ms(self) -> int:
        return now_ms()

    async def close(self) -> None:
        return None


async def from_url(url: str, **options: int) -> InMemoryPersistenceStore:
    """`memory://` (anything after the scheme is ignored: every call is a fresh store)."""
    return InMemoryPersistenceStore(**options)
