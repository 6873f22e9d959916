"""Benchmark output as markdown: rows become tables, and a section of
docs/performance.md between `<!-- NAME:start -->` and `<!-- NAME:end -->` is replaced.

A benchmark prints a heading line, then rows indented by two spaces (`bench.common.row`):
`  label   value`. Each heading becomes a table of its rows.
"""

from __future__ import annotations

import re
from pathlib import Path

PERFORMANCE = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
_ROW = re.compile(r"^  (\S.*?)\s{2,}(\S.*)$")


def tables(output: str) -> str:
    """The printed figures as markdown tables, one per heading."""
    parts: list[str] = []
    for line in output.splitlines():
        row = _ROW.match(line)
        if row is None:
            if line.strip() and not line.startswith(" "):
                parts += ["", f"**{line.strip()}**", "", "| measure | figure |", "|---|---|"]
            continue
        label, value = row.groups()
        parts.append(f"| {label.strip()} | {' '.join(value.split())} |")
    return "\n".join(parts).strip() + "\n"


def replace_section(name: str, text: str, path: Path = PERFORMANCE) -> None:
    """Put `text` between the section's markers in `path` (appended if they are missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{text.rstrip()}\n{end}"
    current = path.read_text() if path.exists() else "# Performance\n"
    if start in current and end in current:
        before, rest = current.split(start, 1)
        after = rest.split(end, 1)[1]
        path.write_text(before + body + after)
    else:
        path.write_text(current.rstrip() + "\n\n" + body + "\n")
