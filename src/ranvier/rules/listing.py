"""The rules of listing: trace status, the query's arguments, and opaque cursors."""

from __future__ import annotations

import base64

from ranvier.errors import InvalidInput
from ranvier.model import CompletionState, TraceStatus
from ranvier.rules.validation import (
    MAX_PAGE_SIZE,
    validate_id,
    validate_positive,
    validate_step,
)

# --- listing ----------------------------------------------------------------------


def trace_status(completion: CompletionState | str | None, lease_live: bool) -> TraceStatus:
    if completion is None:
        return TraceStatus.RUNNING if lease_live else TraceStatus.INTERRUPTED
    return _STATUS_OF_COMPLETION[CompletionState(completion)]


_STATUS_OF_COMPLETION = {
    CompletionState.SUCCESS: TraceStatus.SUCCEEDED,
    CompletionState.FAULT: TraceStatus.FAULTED,
    CompletionState.COMPENSATED: TraceStatus.COMPENSATED,
    CompletionState.CANCELLED: TraceStatus.CANCELLED,
}
COMPLETION_OF_STATUS = {status: state for state, status in _STATUS_OF_COMPLETION.items()}


def status_matches(wanted: TraceStatus | None, actual: TraceStatus) -> bool:
    if wanted is None or wanted is actual:
        return True
    return wanted is TraceStatus.COMPLETED and actual not in (
        TraceStatus.RUNNING,
        TraceStatus.INTERRUPTED,
    )


def validate_status(status: object) -> TraceStatus | None:
    if status is None:
        return None
    try:
        return TraceStatus(str(status))
    except ValueError:
        names = ", ".join(s.value for s in TraceStatus)
        raise InvalidInput(f"status {status!r} is not one of {names}") from None


def validate_list_query(
    status: object,
    circuit: object,
    updated_before_ms: object,
    limit: object,
    cursor: str | None,
    min_attempts: object = None,
) -> tuple[TraceStatus | None, str | None]:
    """Check every `list_traces` argument; returns the wanted status and cursor position."""
    wanted = validate_status(status)
    if min_attempts is not None:
        validate_positive("min_attempts", min_attempts)
    if circuit is not None:
        validate_id("circuit", circuit)
    if updated_before_ms is not None:
        validate_step(updated_before_ms, what="updated_before_ms")
    validate_positive("limit", limit, maximum=MAX_PAGE_SIZE)
    return wanted, decode_cursor(cursor)


def encode_cursor(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode()


def decode_cursor(cursor: str | None) -> str | None:
    """The position `encode_cursor` wrapped; `InvalidInput` for anything it did not make."""
    if cursor is None:
        return None
    position = ""
    if type(cursor) is str:
        try:
            position = base64.urlsafe_b64decode(cursor.encode("ascii")).decode()
        except ValueError:  # also UnicodeError and binascii.Error
            position = ""
    # b64decode skips stray characters: only an exact round trip proves it is ours
    if not position or encode_cursor(position) != cursor:
        raise InvalidInput(
            f"cursor {cursor!r} is not one this store handed out; pass next_cursor as is"
        )
    return position
