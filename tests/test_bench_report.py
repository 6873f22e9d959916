"""The benchmark report: printed rows become tables, sections are replaced in place."""

from __future__ import annotations

from pathlib import Path

from bench.report import replace_section, tables


def test_rows_become_one_table_per_heading() -> None:
    out = "sqlite: appends\n  append p50          22.8 us\n  64 concurrent   52,700 /s\n"
    assert tables(out) == (
        "**sqlite: appends**\n\n| measure | figure |\n|---|---|\n"
        "| append p50 | 22.8 us |\n| 64 concurrent | 52,700 /s |\n"
    )


def test_a_section_is_replaced_between_its_markers_and_the_rest_kept(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(
        "# Performance\n\nintro\n\n<!-- bench:x:start -->\nold\n<!-- bench:x:end -->\ntail\n"
    )
    replace_section("bench:x", "new\n", page)
    assert page.read_text() == (
        "# Performance\n\nintro\n\n<!-- bench:x:start -->\nnew\n<!-- bench:x:end -->\ntail\n"
    )
    replace_section("bench:y", "added", page)
    assert page.read_text().endswith("<!-- bench:y:start -->\nadded\n<!-- bench:y:end -->\n")
