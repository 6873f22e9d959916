"""bench/peers.py without its `bench` extra: the table, the docs section, the run counts."""

from __future__ import annotations

from pathlib import Path

from bench.peers import CONCURRENCY, Cell, Plan, in_flight, one_after_another, report, table
from bench.report import replace_section

CELLS = [
    Cell("ranvier", "sqlite", "`Axon`", 50.0, 20_000.0),
    Cell("langgraph", "sqlite", "`SqliteSaver`", 2_500.0, 400.0),
    Cell("dbos", "postgres", error="ModuleNotFoundError: No module named 'dbos'"),
]


def test_the_table_gives_each_peer_beside_ranvier_on_the_same_store() -> None:
    rows = table(CELLS).splitlines()
    assert rows[2] == "| SQLite | ranvier | `Axon` | 50.0 µs | 20,000 |"
    assert rows[3] == "| SQLite | LangGraph | `SqliteSaver` | 2,500 µs (50.0x) | 400 (50.0x) |"
    assert rows[4] == (
        "| PostgreSQL | DBOS | | did not run: ModuleNotFoundError: No module named 'dbos' | |"
    )


def test_the_section_goes_between_the_peers_markers_only(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text("# Performance\n\n<!-- peers:start -->\nold\n<!-- peers:end -->\n\n## Next\n")
    replace_section("peers", report(CELLS, Plan(), "SQLite 3", "make peers"), page)
    text = page.read_text()
    assert text.startswith("# Performance\n\n<!-- peers:start -->\nMeasured ")
    assert "by `make peers` on " in text and "| SQLite | ranvier |" in text and "old" not in text
    assert text.endswith("|\n<!-- peers:end -->\n\n## Next\n")


async def test_the_timings_make_the_runs_they_say() -> None:
    calls = 0

    async def run() -> None:
        nonlocal calls
        calls += 1

    plan = Plan(runs=3, warmup=2, round_runs=2 * CONCURRENCY, rounds=2)
    assert await one_after_another(run, plan) >= 0
    assert calls == 5
    assert await in_flight(run, plan) > 0
    assert calls == 5 + CONCURRENCY + 2 * 2 * CONCURRENCY
