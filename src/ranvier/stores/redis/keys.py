"""The Redis store's vocabulary: key shapes, trace id encoding and record formats.

Every key of a trace is `<prefix>:{<enc(trace_id)>}:<kind>`, so all of them share one
hash tag and live on one cluster slot: each script (`scripts`) touches one trace
only and runs atomically there.

The state hash (`state`) holds `id`, `circuit`, `version`, `created`, `updated`, `last`
(the last live step, -1 when none), and when set `resumed`, `completion`, `completed`,
`ivreq`; since 0.2 also `input` (canonical JSON, absent for a null input), `attempts`
(absent: 0) and `forked_from`/`forked_at` (the fork origin's trace id and step).

Records are JSON arrays, so a whole trace decodes with one `orjson.loads`:
- event (hash `ev`, field = step; list `sup` once superseded):
  `[step, kind, node_id, payload_hash, timestamp_ms, schematic_version, payload]`
- intervention (list `iv`): `[target_node, timestamp_ms, payload_override]`
"""

from __future__ import annotations

import base64
import re

from ranvier.errors import InvalidInput

DEFAULT_PREFIX = "ranvier:persistence"

STATE, EVENTS, SUPERSEDED, INTERVENTIONS, LEASE = "state", "ev", "sup", "iv", "lease"
TRACE_KINDS = (STATE, EVENTS, SUPERSEDED, INTERVENTIONS, LEASE)
"""The keys of one trace, in the order every trace script receives them (KEYS[1..5])."""
COMPENSATION = "compensation"
SCHEMA = "schema"
SCHEMA_VERSION = 1
"""The key layout this code writes (`<prefix>:schema` holds it once `ensure_schema` ran;
traces written before the marker existed use this same layout)."""

_SAFE = re.compile(r"[A-Za-z0-9_.:\-]+")
_ENCODED_MARK = "~"  # not in the safe charset: an encoded id never equals a plain one


def validate_prefix(prefix: object) -> str:
    if type(prefix) is not str or not prefix or not _SAFE.fullmatch(prefix):
        raise InvalidInput(
            f"key prefix {prefix!r} must be non-empty and use only letters, digits and "
            "'_.:-' (no braces: they would move the cluster hash tag)"
        )
    return prefix


def encode_id(value: str) -> str:
    """A trace id (or compensation key) as it appears inside the hash tag braces."""
    if _SAFE.fullmatch(value):
        return value
    raw = base64.urlsafe_b64encode(value.encode()).rstrip(b"=").decode()
    return _ENCODED_MARK + raw


def decode_id(encoded: str) -> str:
    if not encoded.startswith(_ENCODED_MARK):
        return encoded
    raw = encoded[1:]
    return base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()


def trace_keys(prefix: str, trace_id: str) -> tuple[str, str, str, str, str]:
    tag = f"{prefix}:{{{encode_id(trace_id)}}}:"
    return (tag + STATE, tag + EVENTS, tag + SUPERSEDED, tag + INTERVENTIONS, tag + LEASE)


def keys_of_state_key(state_key: str) -> tuple[str, str, str, str, str]:
    base = state_key[: -len(STATE)]
    return (state_key, base + EVENTS, base + SUPERSEDED, base + INTERVENTIONS, base + LEASE)


def state_pattern(prefix: str) -> str:
    """SCAN MATCH pattern of every trace's state key (the prefix is glob-safe)."""
    return f"{prefix}:{{*}}:{STATE}"


def lease_pattern(prefix: str) -> str:
    return f"{prefix}:{{*}}:{LEASE}"


def trace_id_of_key(key: str) -> str:
    """The trace id inside a trace key's hash tag."""
    return decode_id(key[key.index("{") + 1 : key.rindex("}")])


def schema_key(prefix: str) -> str:
    return f"{prefix}:{SCHEMA}"


def compensation_key(prefix: str, key: str) -> str:
    return f"{prefix}:{COMPENSATION}:{{{encode_id(key)}}}"


def compensation_pattern(prefix: str) -> str:
    return f"{prefix}:{COMPENSATION}:{{*}}"


def key_patterns(prefix: str) -> list[str]:
    """Every key shape under `prefix`, for operators (doctor, docs)."""
    trace = [f"{prefix}:{{<trace_id>}}:{kind}" for kind in TRACE_KINDS]
    return [*trace, f"{prefix}:{COMPENSATION}:{{<key>}}", schema_key(prefix)]


def compensation_key_name(full_key: str) -> str:
    return decode_id(full_key[full_key.rindex("{") + 1 : -1])
