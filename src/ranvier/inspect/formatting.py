"""How values look on the pages: times, durations, sizes, payload previews.

Everything returned here is plain text; the templates escape it (autoescape is on).
"""

from __future__ import annotations

import orjson

from ranvier import rules
from ranvier.model import JSONValue
from ranvier.ops.timeline import iso, short

PREVIEW_CHARS = 120
MAX_SHOWN_BYTES = 1 << 62

__all__ = ["duration", "iso", "payload_bytes", "payload_text", "preview", "short", "size"]


def payload_bytes(payload: JSONValue) -> int:
    """The payload's stored size: its canonical JSON, in bytes (0 for none)."""
    data = rules.encode_payload(payload, max_bytes=MAX_SHOWN_BYTES)
    return 0 if data is None else len(data)


def payload_text(payload: JSONValue) -> str:
    """The whole payload as indented JSON."""
    return orjson.dumps(payload, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def preview(payload: JSONValue, chars: int = PREVIEW_CHARS) -> str:
    """The payload's compact JSON, cut to `chars` characters."""
    if payload is None:
        return "-"
    text = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
    return text if len(text) <= chars else text[: chars - 1] + "\u2026"


def size(count: int) -> str:
    """Bytes for people: 512 B, 1.5 KiB, 3.2 MiB."""
    if count < 1024:
        return f"{count} B"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def duration(ms: int | None) -> str:
    """A gap between two times: 850 ms, 2.4 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if ms is None:
        return ""
    if ms < 0:
        return "-" + duration(-ms)
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
