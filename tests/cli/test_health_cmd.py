"""schema, doctor, bench, demo and the error contract of every command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ranvier.ops.stores import count_traces
from tests.cli.conftest import Cli, Target, assert_one_line_error

UNREACHABLE = {
    "sqlite": "sqlite:////nonexistent-dir/deeper/ranvier.db",
    "postgres": "postgresql://nobody@127.0.0.1:1/nothing",
    "redis": "redis://127.0.0.1:1/0",
}


def test_schema_ensure_is_idempotent_and_show_reports_it(cli: Cli, target: Target) -> None:
    for _ in range(2):
        made = cli(target, "schema", "ensure", "--json")
        assert made.exit_code == 0, made.output
    info = json.loads(cli(target, "schema", "show", "--json").stdout)
    assert info["adapter"] == target.name
    assert info["schema_version"] == info["latest_schema_version"] >= 1
    if target.name == "redis":
        assert any(p.endswith(":state") for p in info["objects"])
        # the compensation keys as the adapter really names them
        assert any(":compensation:" in p for p in info["objects"]), info["objects"]
        assert set(info["settings"]) >= {"appendonly", "appendfsync", "save"}
    else:
        assert any(t.endswith("_events") for t in info["objects"])


def test_partitions_are_refused_where_there_are_none(cli: Cli, target: Target) -> None:
    if target.name == "postgres":  # partitions apply when the tables are created

        async def drop(store: Any) -> None:
            await store.drop_schema()

        target.with_store(drop)
    result = cli(target, "schema", "ensure", "--partitions", "4")
    if target.name == "postgres":
        assert result.exit_code == 0, result.output
        info = json.loads(cli(target, "schema", "show", "--json").stdout)
        assert info["settings"]["partitions"] == 4
    else:
        assert_one_line_error(result, 2, "PostgreSQL only")


def test_doctor_passes_on_a_reachable_store(cli: Cli, target: Target) -> None:
    assert cli(target, "schema", "ensure").exit_code == 0
    result = cli(target, "doctor", "--json")
    assert result.exit_code == 0, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["connectivity"]["level"] == "ok"
    assert checks["schema"]["level"] == "ok"
    if target.name == "postgres":
        assert "server max_connections" in checks["pool"]["detail"]
        assert checks["durability"]["detail"] == "synchronous_commit=on"
    if target.name == "redis":  # the shared test server runs without persistence
        assert checks["durability"]["level"] == "warn"
        assert "resume after a crash is impossible" in checks["durability"]["detail"]
    else:
        assert checks["durability"]["level"] == "ok"


def test_doctor_warns_about_the_memory_store(cli: Cli) -> None:
    result = cli(None, "doctor", "--store", "memory://")
    assert result.exit_code == 0, result.output
    assert "resume after a crash is impossible" in result.stdout


@pytest.mark.parametrize("adapter", sorted(UNREACHABLE))
def test_an_unreachable_store_is_one_line_and_exit_3(cli: Cli, adapter: str) -> None:
    url = UNREACHABLE[adapter]
    doctor = cli(None, "doctor", "--store", url, "--json")
    assert doctor.exit_code == 1
    checks = json.loads(doctor.stdout)
    if adapter == "sqlite":  # a path that does not exist: a missing store, created by nothing
        assert_one_line_error(cli(None, "traces", "list", "--store", url), 11)
        failed = [c for c in checks if c["level"] == "fail"]
        assert [c["name"] for c in failed] == ["schema"]
        return
    assert_one_line_error(cli(None, "traces", "list", "--store", url), 3)
    assert checks == [{"name": "connectivity", "level": "fail", "detail": checks[0]["detail"]}]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["traces", "list", "--store", "mysql://db/x"], 2, "no known scheme"),
        (["traces", "list", "--store", "sqlite://relative.db"], 2, "sqlite:///"),
        (["traces", "list", "--store", "memory://", "-o", "table_prefix"], 2, "KEY=VALUE"),
        (["traces", "list", "--store", "sqlite:///x.db", "-o", "colour=blue"], 2, "colour"),
        (["traces", "list", "--store", "memory://", "--status", "sleeping"], 2, "sleeping"),
    ],
)
def test_bad_input_is_one_line_with_a_non_zero_exit(
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    code: int,
    fragment: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(None, *args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert fragment in result.output


def test_bench_measures_and_cleans_up(cli: Cli, target: Target) -> None:
    result = cli(
        target, "bench", "--samples", "5", "--concurrency", "4", "--per-writer", "3", "--json"
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.stdout)
    assert row["adapter"] == target.name
    assert row["latency_p50_ms"] > 0 and row["throughput_per_s"] > 0
    assert row["multi_process"] is True
    if target.name != "redis":  # Redis: as its persistence settings say
        assert row["resume_after_crash"] is True
    assert target.with_store(count_traces) == 0


def test_bench_prints_the_selection_table_for_several_stores(cli: Cli, tmp_path: Path) -> None:
    stores = ["--store", "memory://", "--store", f"sqlite:///{tmp_path / 'b.db'}"]
    result = cli(None, "bench", *stores, "--samples", "3", "--concurrency", "2",
                 "--per-writer", "2")  # fmt: skip
    assert result.exit_code == 0, result.output
    for label in ("checkpoint latency p50", "throughput, 2 concurrent", "resume after crash",
                  "multi-process"):  # fmt: skip
        assert label in result.stdout


def test_python_m_ranvier_runs_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ranvier", "traces", "list", "--store", "mysql://x"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "ranvier", "--help"], capture_output=True, text=True, check=False
    )
    for command in ("schema", "traces", "resume", "recover", "purge", "backup", "doctor", "bench"):
        assert command in helped.stdout


def test_demo_runs_on_a_sqlite_store(cli: Cli, tmp_path: Path) -> None:
    result = cli(None, "demo", "--store", f"sqlite:///{tmp_path / 'demo.db'}")
    assert result.exit_code == 0, result.output


def test_schema_show_on_a_missing_sqlite_directory_is_one_line_and_exit_11(
    cli: Cli, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/no-such-dir/x.db"
    assert_one_line_error(cli(None, "schema", "show", "--store", url), 11, "no-such-dir")
    assert not (tmp_path / "no-such-dir").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["traces", "list"],
        ["traces", "show", "t-1"],
        ["backup", "--out", "b.jsonl.gz"],
        ["purge", "--older-than", "1d", "--dry-run"],
        ["compensations", "list"],
    ],
)
def test_a_read_only_command_on_a_missing_store_creates_nothing(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(None, *args, "--store", "sqlite:///prod.bd")  # a typo
    assert_one_line_error(result, 11, "no ranvier schema")
    assert "ranvier schema ensure" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_doctor_in_an_empty_directory_reports_the_missing_schema_and_creates_nothing(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    result = cli(None, "doctor", "--json", env={"RANVIER_STORE_URL": ""})
    assert result.exit_code == 1, result.output
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert checks["schema"]["level"] == "fail" and "schema ensure" in checks["schema"]["detail"]
    assert "connectivity" not in checks or checks["connectivity"]["level"] == "ok"
    assert list(tmp_path.iterdir()) == []


def test_read_only_commands_on_a_mistyped_prefix_say_so(cli: Cli, target: Target) -> None:
    if target.name == "sqlite":
        return  # the file case is above
    option = "table_prefix=typo_prefix" if target.name == "postgres" else "prefix=ranvier:typo"
    result = cli(target, "traces", "list", "-o", option)
    assert_one_line_error(result, 11, "no ranvier schema")
    doctor = cli(target, "doctor", "-o", option, "--json")
    checks = {c["name"]: c for c in json.loads(doctor.stdout)}
    assert checks["schema"]["level"] == "fail"


def test_version_verify_alone_and_demo_ignore_the_environment(
    cli: Cli, target: Target, tmp_path: Path
) -> None:
    version = cli(None, "--version")
    assert version.exit_code == 0 and version.stdout.startswith("ranvier ")
    assert cli(target, "backup", "--out", str(tmp_path / "v.jsonl.gz")).exit_code == 0
    alone = cli(target, "verify", str(tmp_path / "v.jsonl.gz"), "--json")  # env names a store
    assert alone.exit_code == 0 and "store_traces" not in alone.stdout
