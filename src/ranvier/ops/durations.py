"""Retention windows: "30d", "12h", "15m", "90s" (or "1d12h") and the runbook's presets."""

from __future__ import annotations

import re

from ranvier.errors import InvalidInput

_UNIT_MS = {"w": 7 * 86_400_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000}
_PART = re.compile(r"(\d+)([wdhms])")
_WHOLE = re.compile(r"(?:\d+[wdhms])+")

PRESETS: dict[str, str] = {
    "dev": "7d",
    "staging": "7d",
    "prod": "30d",
    "regulated-90d": "90d",
    "regulated": "365d",
}
"""The runbook's recommended windows: dev/staging 7 days, prod 30, regulated 90-365
(`regulated` keeps the whole range's upper end; `regulated-90d` its lower end)."""
"""The runbook's recommended retention windows (dev/staging, prod, regulated prod)."""


def parse_duration(text: str) -> int:
    """Milliseconds in `text` ("30d", "12h", "15m", "90s", "1d12h"); `InvalidInput` if malformed."""
    cleaned = text.strip().lower()
    if not _WHOLE.fullmatch(cleaned):
        raise InvalidInput(
            f"duration {text!r} is not understood; write a number and a unit (w, d, h, m, s), "
            "e.g. 30d, 12h, 15m, 90s or 1d12h"
        )
    total = sum(int(n) * _UNIT_MS[unit] for n, unit in _PART.findall(cleaned))
    if total <= 0:
        raise InvalidInput(f"duration {text!r} is zero; give a positive window")
    return total


def preset_duration(name: str) -> int:
    """Milliseconds of a retention preset (see `PRESETS`)."""
    window = PRESETS.get(name.strip().lower())
    if window is None:
        names = ", ".join(f"{k} ({v})" for k, v in PRESETS.items())
        raise InvalidInput(f"retention preset {name!r} is unknown; use one of {names}")
    return parse_duration(window)


def format_duration(ms: int) -> str:
    """The largest units that fit exactly: 2592000000 -> "30d"."""
    if ms <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNIT_MS.items():
        if unit == "w":
            continue
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or f"{ms}ms"
