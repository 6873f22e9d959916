"""Table names from a checked prefix, and the SQL fragments that turn times to and from
unix milliseconds."""

from __future__ import annotations

import re

from ranvier.errors import InvalidInput

DEFAULT_PREFIX = "ranvier_persistence"
_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]*")
MAX_PREFIX_LENGTH = 63 - len("_compensation_idempotency")
"""PostgreSQL truncates identifiers at 63 bytes; the longest table suffix must fit."""

MAX_TIME_MS = 9_224_318_015_999_999
"""The last millisecond a `timestamptz` holds (294276-12-31 23:59:59.999 UTC): trace and
ledger times past it cannot be stored; cutoffs past it mean "everything"."""


def validate_prefix(prefix: object) -> str:
    """A lowercase SQL identifier short enough for every table name, else `InvalidInput`."""
    if type(prefix) is not str or not _PREFIX_RE.fullmatch(prefix):
        raise InvalidInput(
            f"table prefix {prefix!r} is not a plain SQL identifier; use lowercase letters, "
            "digits and underscores, starting with a letter or underscore"
        )
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise InvalidInput(
            f"table prefix {prefix!r} is {len(prefix)} characters; use at most {MAX_PREFIX_LENGTH}"
        )
    return prefix


def table_names(prefix: str) -> dict[str, str]:
    prefix = validate_prefix(prefix)
    return {
        "state": f"{prefix}_state",
        "events": f"{prefix}_events",
        "interventions": f"{prefix}_interventions",
        "leases": f"{prefix}_leases",
        "compensations": f"{prefix}_compensation_idempotency",
        "schema_version": f"{prefix}_schema_version",
    }


NOW = "date_trunc('milliseconds', now())"


def ms(expr: str) -> str:
    """SQL for a timestamptz expression as unix milliseconds, truncated like NOW (a cast
    alone would round: `now_ms()` could then read 1 ms past a time NOW records after)."""
    return f"floor(extract(epoch FROM {expr}) * 1000)::bigint"


def ts(param: str) -> str:
    """SQL for a unix-millisecond parameter as timestamptz, exact up to `MAX_TIME_MS`.

    Whole days and the rest apart: `bigint * interval` multiplies in float8, exact only
    up to 2**53 microseconds (the year 2255). On `timestamp`, not `timestamptz`, so that
    adding days never meets the session time zone's daylight saving changes.
    """
    p = f"{param}::bigint"
    return (
        f"((timestamp 'epoch' + ({p} / 86400000) * interval '1 day'"
        f" + ({p} % 86400000) * interval '1 millisecond') AT TIME ZONE 'UTC')"
    )


def cutoff(param: str) -> str:
    """SQL for a unix-millisecond cutoff as timestamptz: past `MAX_TIME_MS`, infinity
    (every stored time is before it), so any 64-bit cutoff works."""
    infinity = "'infinity'::timestamptz"
    return f"(CASE WHEN {param}::bigint > {MAX_TIME_MS} THEN {infinity} ELSE {ts(param)} END)"
