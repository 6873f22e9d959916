"""The action log: every action taken through the inspector, for people and for audit.

Each entry goes to the `ranvier.inspect` logger, to an in-memory log the trace pages
show in their timelines, and, with `--audit-log FILE`, to that file as one JSON line
(read back when the inspector starts, so the timelines keep showing them).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import orjson

from ranvier.model import now_ms

log = logging.getLogger("ranvier.inspect")

MAX_ENTRIES = 10_000
"""Entries kept in memory (the file keeps them all)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionEntry:
    """One action, or the end of one that ran in the background."""

    timestamp_ms: int
    trace_id: str
    action: str
    detail: str
    outcome: str
    """"ok", "started", "refused", "failed", or what a background run ended as."""
    client: str


class ActionLog:
    """Append-only; the newest `capacity` entries stay in memory."""

    def __init__(self, path: Path | None = None, *, capacity: int = MAX_ENTRIES) -> None:
        self._path = path
        self._entries: deque[ActionEntry] = deque(maxlen=capacity)
        if path is not None and path.exists():
            self._entries.extend(_read(path))

    def record(
        self, trace_id: str, action: str, detail: str, outcome: str, client: str
    ) -> ActionEntry:
        entry = ActionEntry(
            timestamp_ms=now_ms(),
            trace_id=trace_id,
            action=action,
            detail=detail,
            outcome=outcome,
            client=client,
        )
        self._entries.append(entry)
        level = logging.WARNING if outcome in ("refused", "failed") else logging.INFO
        log.log(
            level,
            "inspector action=%s trace_id=%s outcome=%s client=%s %s",
            action,
            trace_id,
            outcome,
            client,
            detail,
        )
        if self._path is not None:
            with self._path.open("ab") as out:
                out.write(orjson.dumps(asdict(entry)) + b"\n")
        return entry

    def for_trace(self, trace_id: str) -> list[ActionEntry]:
        return [e for e in self._entries if e.trace_id == trace_id]

    def __iter__(self) -> Iterator[ActionEntry]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _read(path: Path) -> Iterator[ActionEntry]:
    with path.open("rb") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                yield ActionEntry(**orjson.loads(line))
            except (orjson.JSONDecodeError, TypeError) as exc:
                log.warning("audit log %s line %d skipped: %s", path, number, exc)
