"""The payload hash is SHA-256 of the canonical JSON."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from ranvier import PersistenceEnvelope, rules

# NUL and lone surrogates are refused (tests/contract/test_bad_input.py)
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)


@given(JSON.filter(lambda v: v is not None))
def test_an_envelopes_hash_is_sha256_of_its_canonical_json(payload: Any) -> None:
    envelope = PersistenceEnvelope(
        trace_id="t", circuit="c", schematic_version="1", step=0, payload=payload
    )
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    expected = hashlib.sha256(canonical).hexdigest()
    assert rules.check_envelope(envelope, 1 << 20)[1] == expected
    assert rules.prepare_envelope(envelope).payload_hash == expected
