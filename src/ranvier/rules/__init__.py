"""The contract's rules as pure functions, written once for every adapter.

Adapters do I/O; what is valid (`validation`), what counts as a retry or a conflict and
when a lease holds (`writes`), how listing and cursors work (`listing`), and what a whole
trace must satisfy (`traces`) is decided here. Adapters use them as `rules.<name>`.
"""

from ranvier.rules.listing import (
    COMPLETION_OF_STATUS,
    decode_cursor,
    encode_cursor,
    status_matches,
    trace_status,
    validate_list_query,
    validate_status,
)
from ranvier.rules.traces import (
    PreparedStart,
    PreparedTrace,
    pending_intervention,
    prepare_start,
    prepare_trace,
    trace_digest,
)
from ranvier.rules.validation import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    MAX_BATCH_SIZE,
    MAX_ID_LENGTH,
    MAX_JSON_DEPTH,
    MAX_PAGE_SIZE,
    PreparedEnvelope,
    check_envelope,
    decode_payload,
    encode_payload,
    payload_digest,
    prepare_envelope,
    prepare_intervention,
    validate_completion,
    validate_id,
    validate_positive,
    validate_step,
)
from ranvier.rules.writes import (
    check_circuit,
    check_fence,
    check_open,
    check_reappend,
    check_resume_step,
    completion_change,
    is_identical_reappend,
    lease_is_live,
    validate_lease_request,
)

__all__ = [
    "COMPLETION_OF_STATUS",
    "DEFAULT_MAX_PAYLOAD_BYTES",
    "MAX_BATCH_SIZE",
    "MAX_ID_LENGTH",
    "MAX_JSON_DEPTH",
    "MAX_PAGE_SIZE",
    "PreparedEnvelope",
    "PreparedStart",
    "PreparedTrace",
    "check_circuit",
    "check_envelope",
    "check_fence",
    "check_open",
    "check_reappend",
    "check_resume_step",
    "completion_change",
    "decode_cursor",
    "decode_payload",
    "encode_cursor",
    "encode_payload",
    "is_identical_reappend",
    "lease_is_live",
    "payload_digest",
    "pending_intervention",
    "prepare_envelope",
    "prepare_intervention",
    "prepare_start",
    "prepare_trace",
    "status_matches",
    "trace_digest",
    "trace_status",
    "validate_completion",
    "validate_id",
    "validate_lease_request",
    "validate_list_query",
    "validate_positive",
    "validate_status",
    "validate_step",
]
