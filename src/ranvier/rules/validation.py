"""Validation of what a caller hands a store: ids, steps, payloads, envelopes."""

from __future__ import annotations

import hashlib
import math
from dataclasses import replace
from typing import Any

import orjson

from ranvier.errors import InvalidInput
from ranvier.model import (
    CompletionState,
    Intervention,
    JSONValue,
    OutcomeKind,
    PersistenceEnvelope,
)

MAX_ID_LENGTH = 255
"""Longest trace id, circuit, version, node id, holder or compensation key (characters)."""
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20
"""Default limit on a payload's canonical JSON size; stores take `max_payload_bytes`."""
MAX_JSON_DEPTH = 254
"""Most levels of nested lists/objects in a payload (orjson's limit); deeper is `InvalidInput`."""
MAX_BATCH_SIZE = 10_000
MAX_PAGE_SIZE = 10_000


class PreparedEnvelope:
    """A validated envelope: its canonical JSON, payload hash and outcome kind.

    `envelope` is the caller's envelope with `payload_hash` and `outcome_kind` filled in.
    It is built on first use: an adapter that reads `source`, `payload_hash` and
    `outcome_kind` instead never pays for the copy (every checkpoint takes this path).
    Read-only by convention; `prepare_envelope` is the way to make one.
    """

    __slots__ = ("_envelope", "outcome_kind", "payload_hash", "payload_json", "source")

    source: PersistenceEnvelope
    """The caller's envelope, validated (its `payload_hash` may be None)."""
    payload_json: bytes | None
    payload_hash: str | None
    outcome_kind: OutcomeKind
    _envelope: PersistenceEnvelope | None

    def __init__(
        self,
        envelope: PersistenceEnvelope,
        payload_json: bytes | None,
        payload_hash: str | None = None,
        outcome_kind: OutcomeKind | None = None,
    ) -> None:
        """From a validated envelope and its payload's JSON; the hash and kind computed
        by the checks (default: the envelope's own)."""
        self.source = envelope
        self.payload_json = payload_json
        if outcome_kind is None:
            payload_hash, outcome_kind = envelope.payload_hash, OutcomeKind(envelope.outcome_kind)
        self.payload_hash = payload_hash
        self.outcome_kind = outcome_kind
        same = envelope.payload_hash == payload_hash and outcome_kind is envelope.outcome_kind
        self._envelope = envelope if same else None

    @property
    def envelope(self) -> PersistenceEnvelope:
        envelope = self._envelope
        if envelope is None:
            envelope = _with_hash(self.source, self.payload_hash, self.outcome_kind)
            self._envelope = envelope
        return envelope

    def __repr__(self) -> str:
        return f"PreparedEnvelope({self.envelope!r}, {self.payload_json!r})"


# --- validation -------------------------------------------------------------------


_KNOWN_IDS: set[str] = set()
"""Ids that passed `validate_id` lately (valid whatever they name): circuits, versions,
node ids and a run's trace id repeat on every checkpoint, so most checks are one lookup."""
_KNOWN_IDS_MAX = 4096


def validate_id(what: str, value: object) -> str:
    """A non-empty str of at most MAX_ID_LENGTH characters, without NUL or surrogates."""
    if type(value) is str and value in _KNOWN_IDS:
        return value
    if type(value) is not str:
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidInput(f"{what} is {len(value)} characters long; use at most {MAX_ID_LENGTH}")
    if "\x00" in value:
        raise InvalidInput(f"{what} contains a NUL character (\\x00); remove it")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidInput(f"{what} is not valid Unicode (lone surrogate)") from None
    if len(_KNOWN_IDS) >= _KNOWN_IDS_MAX:
        _KNOWN_IDS.clear()  # crude but bounded; a set op is atomic under the GIL
    _KNOWN_IDS.add(value)
    return value


MAX_INT = (1 << 63) - 1
"""The largest step, timestamp, token or count any store keeps (a signed 64-bit int)."""


def validate_step(step: object, *, what: str = "step", minimum: int = 0) -> int:
    if type(step) is not int:
        raise InvalidInput(f"{what} must be an int, got {type(step).__name__}")
    if step < minimum:
        raise InvalidInput(f"{what} must be >= {minimum}, got {step}")
    if step > MAX_INT:
        raise InvalidInput(f"{what} must be at most 2**63 - 1 ({MAX_INT}), got {step}")
    return step


def validate_positive(what: str, value: object, *, maximum: int | None = None) -> int:
    if type(value) is not int or value <= 0:
        raise InvalidInput(f"{what} must be a positive int, got {value!r}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{what} must be at most {maximum}, got {value}")
    return value


_SCALARS = frozenset((str, int, bool, type(None)))


def _is_plain_json(value: Any) -> bool:
    """Fast type walk (no messages); `_check_json` explains a failure with its path.

    Dicts and lists test their items' types inline and call only for containers (this
    runs on every checkpoint's payload). Dict keys are not looked at: orjson, which
    encodes the payload next, refuses any key that is not exactly a str.
    """
    kind = type(value)
    scalars = _SCALARS
    if kind is dict:
        for item in value.values():
            if type(item) not in scalars and not _is_plain_json(item):
                return False
        return True
    if kind is list:
        for item in value:  # noqa: SIM110 (a loop is faster than all() here)
            if type(item) not in scalars and not _is_plain_json(item):
                return False
        return True
    if kind in scalars:
        return True
    if kind is float:
        return bool(value - value == 0.0)  # false for NaN and infinities
    return False


def _check_json(value: Any, path: str) -> None:
    kind = type(value)
    if kind is str:
        if "\x00" in value:
            raise InvalidInput(f"payload{path} contains a NUL character (\\x00); remove it")
    elif kind is int or kind is bool or value is None:
        return
    elif kind is float:
        if not math.isfinite(value):
            raise InvalidInput(
                f"payload{path} is {value!r}; JSON has no NaN or infinity, store null "
                "or a string instead"
            )
    elif kind is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise InvalidInput(
                    f"payload{path} has a {type(key).__name__} key {key!r}; JSON object "
                    "keys must be str"
                )
            if "\x00" in key:
                raise InvalidInput(f"payload{path} has a key with a NUL character; remove it")
            _check_json(item, f"{path}[{key!r}]")
    elif kind is list:
        for index, item in enumerate(value):
            _check_json(item, f"{path}[{index}]")
    else:
        raise InvalidInput(
            f"payload{path} is a {kind.__name__}; only JSON values can be stored (dict with "
            "str keys, list, str, int, float, bool, None): convert it first"
        )


def encode_payload(
    payload: JSONValue, *, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> bytes | None:
    """The payload's canonical JSON (sorted keys), or None for a None payload."""
    if payload is None:
        return None
    try:
        plain = _is_plain_json(payload)
    except RecursionError:  # a cycle, or nesting far beyond what JSON stores allow
        plain = False
    if not plain:
        _explain(payload)
    try:
        data = _dumps(payload, option=_SORT_KEYS)
    except orjson.JSONEncodeError as exc:
        _explain(payload)  # a key that is not a str: say which
        raise InvalidInput(f"payload cannot be stored as JSON: {exc}") from None
    if b"\\u0000" in data:  # a NUL somewhere (or a literal backslash-u0000): find it
        _check_json(payload, "")
    if len(data) > max_bytes:
        raise InvalidInput(
            f"payload is {len(data)} bytes of JSON; the limit is {max_bytes} "
            "(store a reference instead, or raise max_payload_bytes)"
        )
    return data


_dumps = orjson.dumps
_SORT_KEYS = orjson.OPT_SORT_KEYS


def _explain(payload: Any) -> None:
    """Raise the `InvalidInput` that says what is wrong with a payload, if anything is."""
    try:
        _check_json(payload, "")
    except RecursionError:
        raise InvalidInput(
            f"payload is nested deeper than {MAX_JSON_DEPTH} levels (or contains itself); "
            "flatten it"
        ) from None


def decode_payload(data: bytes | str | None) -> JSONValue:
    return None if data is None else orjson.loads(data)


def payload_digest(data: bytes | None) -> str | None:
    """sha256 hex of the canonical JSON: what re-appends are compared by."""
    return None if data is None else hashlib.sha256(data).hexdigest()


def prepare_envelope(
    envelope: PersistenceEnvelope, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> PreparedEnvelope:
    """Validate an envelope and compute its payload hash; raises `InvalidInput`."""
    data, digest, kind = check_envelope(envelope, max_payload_bytes)
    return PreparedEnvelope(envelope, data, digest, kind)


def check_envelope(
    envelope: PersistenceEnvelope, max_payload_bytes: int
) -> tuple[bytes | None, str | None, OutcomeKind]:
    """`prepare_envelope` without its result object: (canonical JSON of the payload, its
    hash, the outcome kind), or `InvalidInput`. For an adapter that needs no more (the
    SQLite store: the object and its release cost ~2,000 instructions per append).

    On every checkpoint's path, so the common case is inlined: ids seen lately are one
    set lookup (`validate_id` explains any failure), and no envelope is copied.
    """
    if type(envelope) is not PersistenceEnvelope:
        raise InvalidInput(f"expected a PersistenceEnvelope, got {type(envelope).__name__}")
    known = _KNOWN_IDS
    value: object = envelope.trace_id
    if type(value) is not str or value not in known:
        validate_id("trace_id", value)
    value = envelope.circuit
    if type(value) is not str or value not in known:
        validate_id("circuit", value)
    value = envelope.schematic_version
    if type(value) is not str or value not in known:
        validate_id("schematic_version", value)
    value = envelope.step
    if type(value) is not int or value < 0 or value > MAX_INT:
        validate_step(value)
    value = envelope.node_id
    if value is not None and (type(value) is not str or value not in known):
        validate_id("node_id", value)
    kind = envelope.outcome_kind
    if type(kind) is not OutcomeKind:
        try:
            kind = OutcomeKind(kind)
        except ValueError:
            names = ", ".join(k.value for k in OutcomeKind)
            raise InvalidInput(f"outcome_kind {kind!r} is not one of {names}") from None
    value = envelope.timestamp_ms
    if type(value) is not int or value < 0 or value > MAX_INT:
        validate_step(value, what="timestamp_ms")
    payload = envelope.payload
    if payload is None:
        data = digest = None
    else:
        data = None
        if type(payload) is dict and _is_plain_json(payload):  # encode_payload, inlined
            try:  # noqa: SIM105 (suppress() is slower, on every checkpoint's path)
                data = _dumps(payload, option=_SORT_KEYS)
            except orjson.JSONEncodeError:
                pass  # encode_payload explains it
        if data is None or len(data) > max_payload_bytes or b"\\u0000" in data:
            data = encode_payload(payload, max_bytes=max_payload_bytes)  # raises, says why
        digest = hashlib.sha256(data).hexdigest()  # type: ignore[arg-type]
    given = envelope.payload_hash
    if given is not None and given != digest:
        raise InvalidInput(
            "payload_hash does not match the payload; leave it None to have it computed"
        )
    return data, digest, kind


def _with_hash(
    envelope: PersistenceEnvelope, digest: str | None, kind: OutcomeKind
) -> PersistenceEnvelope:
    return replace(envelope, payload_hash=digest, outcome_kind=kind)


def prepare_intervention(
    intervention: Intervention, *, max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES
) -> bytes | None:
    """Validate an intervention; returns its payload override's canonical JSON."""
    if type(intervention) is not Intervention:
        raise InvalidInput(f"expected an Intervention, got {type(intervention).__name__}")
    validate_id("target_node", intervention.target_node)
    validate_step(intervention.timestamp_ms, what="timestamp_ms")
    return encode_payload(intervention.payload_override, max_bytes=max_payload_bytes)


def validate_completion(state: object) -> CompletionState:
    try:
        return CompletionState(str(state))
    except ValueError:
        names = ", ".join(s.value for s in CompletionState)
        raise InvalidInput(f"completion state {state!r} is not one of {names}") from None
