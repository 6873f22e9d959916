"""The rules of the compensation ledger, of lease tokens in backups, and of counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

from ranvier.errors import InvalidInput
from ranvier.model import CompensationRecord, CompensationState, LeaseToken, TraceStatus
from ranvier.rules.validation import validate_id, validate_step

COUNTED_STATUSES = tuple(s for s in TraceStatus if s is not TraceStatus.COMPLETED)
"""The statuses `count_traces_by_status` reports (completed is their sum)."""


def full_counts(counts: Mapping[TraceStatus, int] | Mapping[str, int]) -> dict[TraceStatus, int]:
    """Every counted status, zeros included, from an adapter's partial counts."""
    found = {TraceStatus(str(k)): int(v) for k, v in counts.items()}
    return {status: found.get(status, 0) for status in COUNTED_STATUSES}


def validate_record(record: object) -> CompensationRecord:
    if type(record) is not CompensationRecord:
        raise InvalidInput(f"expected a CompensationRecord, got {type(record).__name__}")
    validate_id("compensation key", record.key)
    CompensationState(record.state)
    validate_step(record.claimed_at_ms, what="claimed_at_ms")
    done = record.compensated_at_ms
    if (record.state is CompensationState.COMPENSATED) != (done is not None):
        raise InvalidInput("compensated_at_ms is set exactly when the key is compensated")
    if done is not None:
        validate_step(done, what="compensated_at_ms")
    return record


def merged_record(
    existing: CompensationRecord | None, incoming: CompensationRecord
) -> CompensationRecord | None:
    """What `import_record` stores: None to leave the ledger as it is. A record never
    goes backwards (a compensated key stays compensated)."""
    incoming = validate_record(incoming)
    if existing == incoming:
        return None
    if existing is not None and existing.state is CompensationState.COMPENSATED:
        return None
    if (
        existing is not None
        and incoming.state is CompensationState.CLAIMED
        and existing.state is CompensationState.CLAIMED
    ):
        return None  # both unfinished: keep the one already here
    return incoming


def validate_token(token: object) -> LeaseToken:
    if type(token) is not LeaseToken:
        raise InvalidInput(f"expected a LeaseToken, got {type(token).__name__}")
    validate_id("trace_id", token.trace_id)
    validate_step(token.token, what="token", minimum=1)
    return token


def page_after(keys: Iterable[str], after: str | None, limit: int) -> list[str]:
    """The sorted keys greater than `after`, at most `limit` (for stores without an
    ordered index)."""
    return sorted(k for k in keys if after is None or k > after)[:limit]


def masked_url(url: str) -> str:
    """The URL with its password replaced by `***` (for logs, `describe`, `doctor`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    hosts = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hosts}"))
