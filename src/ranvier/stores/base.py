"""The store contract: what every persistence adapter promises.

Each method's docstring states its rule; the rules themselves are pure functions in
`ranvier.rules`, and the shared conformance suite (`tests/contract/`) checks
every adapter against them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ranvier.model import (
    CompensationRecord,
    CompletionState,
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
)


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreCapabilities:
    """What an adapter offers beyond the contract, so tests and operators can ask."""

    durable: bool
    """Acknowledged checkpoints survive the process (and, per adapter, the server)."""
    multi_process: bool
    """Several processes can share the store."""


@runtime_checkable
class CompensationIdempotencyStore(Protocol):
    """Remembers which compensation keys were claimed and which finished.

    A key is claimed (atomically, one winner) before the compensation hook runs, and
    marked compensated once it succeeded; a claim that never finished stays visible.
    """

    async def claim(self, key: str) -> bool:
        """Claim `key`; True for exactly one caller, False if it was claimed before."""
        ...

    async def mark_compensated(self, key: str) -> None:
        """Record that `key` was compensated (idempotent; claims it if unclaimed)."""
        ...

    async def was_compensated(self, key: str) -> bool:
        """True once `mark_compensated(key)` was stored."""
        ...

    async def get(self, key: str) -> CompensationRecord | None:
        """The record of `key`, or None."""
        ...

    async def release(self, key: str) -> bool:
        """Drop an unfinished claim so the hook may run again (operator's decision).

        A compensated key is never released; returns True if a claim was dropped.
        """
        ...

    async def list_unfinished(self, *, limit: int = 100) -> list[CompensationRecord]:
        """Claims whose hook never finished, oldest first."""
        ...

    async def list_records(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[CompensationRecord]:
        """Every record (claimed or compensated) with a key greater than `after`, in key
        order, at most `limit` (backups page through the ledger with it)."""
        ...

    async def import_record(self, record: CompensationRecord) -> bool:
        """Store a backed-up record (restore); True if it changed the ledger.

        A record never goes backwards: a compensated key stays compensated, an absent or
        claimed one takes the record's state and times.
        """
        ...

    async def count_older_than_ms(self, cutoff_ms: int) -> int:
        """How many keys `purge_older_than_ms(cutoff_ms)` would delete (a dry run)."""
        ...

    async def purge_older_than_ms(self, cutoff_ms: int) -> int:
        """Delete compensated keys whose hook finished before `cutoff_ms` (unix ms);
        returns how many. A claim whose hook never finished is never purged (nor expires):
        it stays until an operator releases or marks it, so its hook cannot run twice."""
        ...


@runtime_checkable
class PersistenceStore(Protocol):
    """A durable log of checkpoints per trace.

    Writes that carry `fence` (a lease's fencing token) are rejected with `LeaseLost`
    in the same atomic write when that token is no longer the trace's live lease.
    """

    adapter: str
    """Short adapter name (memory, sqlite, postgres, redis) for metrics and logs."""
    capabilities: StoreCapabilities

    @property
    def compensations(self) -> CompensationIdempotencyStore:
        """The compensation idempotency store that lives beside this store."""
        ...

    async def ensure_schema(self) -> None:
        """Create what the store needs; idempotent and safe from many processes at once."""
        ...

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        """Store one checkpoint, atomically with the trace's state change.

        Creates the trace on its first event. An identical re-append of a step of the
        current run (same outcome kind, node id and payload hash) is a no-op; a different
        one raises `CheckpointConflict`. Another circuit raises `CircuitMismatch`, a
        completed trace `TraceCompleted`, bad input `InvalidInput` (nothing stored).
        """
        ...

    async def load(self, trace_id: str) -> PersistedTrace | None:
        """The trace with its live events ordered by step, or None."""
        ...

    async def resume(
        self, trace_id: str, from_step: int, *, fence: int | None = None
    ) -> ResumeCursor:
        """Record a resume after `from_step` (-1: from the start); next_step = from_step + 1.

        Live events after `from_step` become superseded (kept for audit) so those steps
        may be written again. `TraceNotFound`, `TraceCompleted`; a `from_step` beyond the
        last live step is `InvalidInput`.
        """
        ...

    async def complete(
        self, trace_id: str, state: CompletionState, *, fence: int | None = None
    ) -> None:
        """Set `completion` and `completed_at` (store clock).

        The same state again is a no-op, FAULT -> COMPENSATED is allowed, any other
        change raises `TraceCompleted`; `TraceNotFound` if there is no such trace. These
        are decided before the fence: the same state again is a no-op whatever `fence`
        (a completed trace cannot be written anyway), so a retry after an unknown outcome
        succeeds. A write under a `fence` that is not the live lease is `LeaseLost`.

        A completion written under `fence` also releases that lease (as `release_lease`
        does) in the same atomic write, so the caller does not release it. Without a
        fence, and when nothing is written (no-op or error), the lease is not touched.
        """
        ...

    async def save_intervention(self, trace_id: str, intervention: Intervention) -> None:
        """Store an operator's intervention; `TraceNotFound`, `TraceCompleted`."""
        ...

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
        """One page of trace summaries matching every given filter; never loads all.

        `min_attempts`: only traces whose `attempts` is at least that (poisoned runs).
        """
        ...

    async def purge_completed(
        self, cutoff_ms: int, *, batch_size: int = 500, limit: int | None = None
    ) -> int:
        """Delete traces completed before `cutoff_ms` with all their rows, in batches.

        `limit`: delete at most that many (the earliest completed first), so a caller can
        pace a large purge and report its progress.
        """
        ...

    async def count_traces_by_status(self) -> Mapping[TraceStatus, int]:
        """How many traces are in each status (running, interrupted, succeeded, faulted,
        compensated, cancelled; zeros included), counted in the store, never by loading."""
        ...

    async def count_completed_before(self, cutoff_ms: int) -> int:
        """How many traces `purge_completed(cutoff_ms)` would delete (a dry run)."""
        ...

    async def load_many(self, trace_ids: Sequence[str]) -> list[PersistedTrace]:
        """The stored traces among `trace_ids` (missing ones left out), in one round trip
        where the backend allows (backups)."""
        ...

    async def describe(self) -> StoreDescription:
        """What the store is: schema version, tables or key patterns, settings (read-only;
        an empty store reports `schema_version=None`, not an error)."""
        ...

    async def list_lease_tokens(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[LeaseToken]:
        """The last fencing token of every trace that ever had a lease, with a trace id
        greater than `after`, in trace id order (backups)."""
        ...

    async def raise_lease_token(self, trace_id: str, token: int) -> None:
        """Make every later acquisition of the trace's lease get a token above `token`
        (restore). Never lowers a token; a live lease under a lower token is lost."""
        ...

    async def delete(self, trace_id: str) -> bool:
        """Delete one trace with all its rows; True if it existed."""
        ...

    async def import_trace(self, trace: PersistedTrace) -> bool:
        """Store a whole trace as given (restore); True if written, False if identical.

        A different trace already stored under the id raises `RestoreConflict`.
        """
        ...

    async def acquire_lease(
        self, trace_id: str, holder: str, ttl_ms: int, *, start: TraceStart | None = None
    ) -> Lease | None:
        """Take the trace's lease if nobody holds a live one; exactly one contender wins.

        Each acquisition returns a fencing token greater than any before it for this
        trace. The trace need not exist yet. In the same atomic write, an acquisition
        counts an attempt: a stored, unfinished trace's `attempts` grows by one; with
        `start`, a trace not stored yet is created from it (no events, its input kept,
        `attempts` 1). A stored trace is never changed by `start`. Bad input in `start`
        is `InvalidInput` and takes nothing.
        """
        ...

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        """Extend a live lease; `LeaseLost` if it expired or another holder took it."""
        ...

    async def release_lease(self, lease: Lease) -> bool:
        """Give the lease up; False if it was no longer held under this token.

        Not needed after a fenced `complete` that succeeded: that released it already.
        """
        ...

    async def get_lease(self, trace_id: str) -> Lease | None:
        """The live lease on the trace, or None."""
        ...

    async def now_ms(self) -> int:
        """The store's clock in unix ms: what retention and leases are decided by."""
        ...

    async def close(self) -> None:
        """Release connections; the store is unusable afterwards."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
