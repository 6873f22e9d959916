"""What each worker saw: one JSON-lines file per worker process, kept for a failing seed.

Every line is one `os.write` on an O_APPEND file, so a SIGKILL loses at most the line
being written and never tears one. `t` is CLOCK_MONOTONIC (one clock for every process
of the machine, untouched by the clock-skew campaign), so histories merge in order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson


class History:
    def __init__(self, path: Path, worker: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.worker = worker
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def record(self, op: str, **fields: Any) -> None:
        line = {"t": time.monotonic_ns(), "w": self.worker, "pid": os.getpid(), "op": op}
        os.write(self._fd, orjson.dumps({**line, **fields}) + b"\n")

    def close(self) -> None:
        os.close(self._fd)


def history_dir(run_dir: Path) -> Path:
    return run_dir / "history"


def read_all(run_dir: Path) -> list[dict[str, Any]]:
    """Every worker's lines (and the campaign's own), in the order they happened."""
    lines: list[dict[str, Any]] = []
    for path in sorted(history_dir(run_dir).glob("*.jsonl")):
        lines += _lines(path)
    lines.sort(key=lambda line: int(line["t"]))
    return lines


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    for raw in path.read_bytes().splitlines():
        try:
            yield orjson.loads(raw)
        except orjson.JSONDecodeError:  # the line a SIGKILL interrupted
            continue
