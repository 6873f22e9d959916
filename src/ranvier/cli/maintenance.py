"""`ranvier purge`, `doctor`, `bench`: retention and health of a store."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from ranvier.cli._common import (
    EXIT_FAILED,
    JsonOption,
    StoreOption,
    StoreOptionsOption,
    print_json,
    progress,
    run,
    stdout,
)
from ranvier.errors import InvalidInput
from ranvier.ops import bench as ops_bench
from ranvier.ops import doctor as ops_doctor
from ranvier.ops import retention
from ranvier.ops.durations import PRESETS, format_duration, parse_duration, preset_duration
from ranvier.ops.stores import opened
from ranvier.ops.timeline import iso


def _window(older_than: str | None, preset: str | None) -> int:
    if older_than and preset:
        raise InvalidInput("give --older-than or --preset, not both")
    if older_than:
        return parse_duration(older_than)
    if preset:
        return preset_duration(preset)
    presets = ", ".join(f"{k} ({v})" for k, v in PRESETS.items())
    raise InvalidInput(f"say how old: --older-than 30d, or --preset with one of {presets}")


def purge(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Retention window: purge traces completed longer ago than this, by the "
            "store's clock: 30d, 12h, 15m, 90s.",
            envvar="RANVIER_RETENTION",
        ),
    ] = None,
    preset: Annotated[
        str | None,
        typer.Option(
            help="The runbook's windows: dev (7d), prod (30d), regulated (365d) ",
            envvar="RANVIER_RETENTION_PRESET",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Count what would go; delete nothing.",
            envvar="RANVIER_DRY_RUN",
        ),
    ] = False,
    batch: Annotated[
        int,
        typer.Option(
            help="Traces deleted per batch (per transaction).",
            envvar="RANVIER_PURGE_BATCH",
            min=1,
            max=10_000,
        ),
    ] = retention.DEFAULT_BATCH,
    pause_ms: Annotated[
        int | None,
        typer.Option(
            help="Sleep between batches so other writers get the lock (default: 100 on "
            "SQLite, 0 elsewhere).",
            envvar="RANVIER_PURGE_PAUSE_MS",
            min=0,
            show_default=False,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Purge completed traces and compensation keys older than the retention window."""
    report = run(_purge(store, older_than, preset, dry_run, batch, pause_ms, json))
    if json:
        print_json(asdict(report))
        return
    verb = "would purge" if report.dry_run else "purged"
    keys = f" and {report.compensation_keys} finished compensation key(s)"
    stdout().print(
        f"{verb} {report.traces} completed trace(s){keys} older than "
        f"{iso(report.cutoff_ms)} (store clock)",
        highlight=False,
    )


async def _purge(
    url: str | None,
    older_than: str | None,
    preset: str | None,
    dry_run: bool,
    batch: int,
    pause_ms: int | None,
    json: bool,
) -> retention.PurgeReport:
    window = _window(older_than, preset)
    async with opened(url, read_only=dry_run) as store:
        plan = await retention.plan(store, window)
        with progress(
            f"purging traces older than {format_duration(window)}",
            plan.traces,
            enabled=not json and not dry_run,
        ) as advance:
            return await retention.purge(
                store,
                window,
                batch_size=batch,
                dry_run=dry_run,
                progress=advance,
                planned=plan,
                pause_s=None if pause_ms is None else pause_ms / 1000,
            )


def doctor(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Check connectivity, clock, schema version, pool settings and crash durability."""
    checks = run(ops_doctor.diagnose(store))
    if json:
        print_json([asdict(c) for c in checks])
    else:
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        table = Table(box=None, pad_edge=False, show_header=False)
        for check in checks:
            colour = colours[check.level.value]
            table.add_row(f"[{colour}]{check.level.value}[/]", check.name, check.detail)
        stdout().print(table)
    if any(c.level is ops_doctor.Level.FAIL for c in checks):
        raise typer.Exit(EXIT_FAILED)


def bench(
    stores: Annotated[
        list[str] | None,
        typer.Option(
            "--store",
            help="A store to measure; repeat for several (space-separated in the env var).",
            envvar="RANVIER_STORE_URL",
            show_default=False,
        ),
    ] = None,
    store_option: StoreOptionsOption = None,
    samples: Annotated[
        int,
        typer.Option(
            help="Sequential checkpoints timed for latency.",
            envvar="RANVIER_BENCH_SAMPLES",
            min=1,
        ),
    ] = 200,
    concurrency: Annotated[
        int,
        typer.Option(
            help="Concurrent writers for throughput.",
            envvar="RANVIER_BENCH_CONCURRENCY",
            min=1,
        ),
    ] = 64,
    per_writer: Annotated[
        int,
        typer.Option(
            help="Checkpoints per concurrent writer.",
            envvar="RANVIER_BENCH_PER_WRITER",
            min=1,
        ),
    ] = 20,
    json: JsonOption = False,
) -> None:
    """Measure the runbook's adapter table on your stores (throwaway traces, cleaned up)."""
    urls: list[str | None] = list(stores) if stores else [None]
    rows = [
        run(ops_bench.measure(url, samples=samples, concurrency=concurrency, per_worker=per_writer))
        for url in urls
    ]
    if json:
        print_json([asdict(r) for r in rows])
        return
    table = Table(title="Adapter selection (measured here)")
    for column in ("criterion", *(r.adapter for r in rows)):
        table.add_column(column)
    yes = {True: "yes", False: "no"}
    table.add_row("store", *(r.store for r in rows))
    table.add_row("checkpoint latency p50", *(f"{r.latency_p50_ms:.3f} ms" for r in rows))
    table.add_row("checkpoint latency p99", *(f"{r.latency_p99_ms:.3f} ms" for r in rows))
    table.add_row(
        f"throughput, {concurrency} concurrent", *(f"{r.throughput_per_s:,.0f}/s" for r in rows)
    )
    table.add_row(
        "resume after crash",
        *(yes[r.resume_after_crash] + (f" ({r.note})" if r.note else "") for r in rows),
    )
    table.add_row("multi-process", *(yes[r.multi_process] for r in rows))
    stdout().print(table)
