"""`ranvier backup|restore|verify`: a portable file, from any store into any store."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

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
from ranvier.ops import backup as ops_backup
from ranvier.ops.backup_format import BackupSummary
from ranvier.ops.stores import count_traces, mask_url, opened
from ranvier.stores.url import resolve_store_url


def _summary_dict(summary: BackupSummary | None) -> dict[str, Any] | None:
    return None if summary is None else asdict(summary)


def backup(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="The backup file to write (.jsonl.gz).",
            envvar="RANVIER_BACKUP_FILE",
            dir_okay=False,
        ),
    ],
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Write every trace to a portable, compressed, checksummed file (streaming)."""
    summary = run(_backup(store, out, json))
    if json:
        print_json(_summary_dict(summary))
    else:
        stdout().print(
            f"backed up {summary.traces} trace(s), {summary.events} event(s), "
            f"{summary.compensations} compensation record(s) and {summary.lease_tokens} "
            f"lease token(s) to {out} (checksum {summary.checksum[:16]}...)",
            highlight=False,
        )


async def _backup(url: str | None, path: Path, json: bool) -> BackupSummary:
    async with opened(url, read_only=True) as store:
        total = await count_traces(store)
        with progress("backing up", total, enabled=not json) as advance:
            return await ops_backup.backup(store, path, progress=advance)


def restore(
    in_: Annotated[
        Path,
        typer.Option(
            "--in",
            help="The backup file to restore.",
            envvar="RANVIER_BACKUP_FILE",
            dir_okay=False,
        ),
    ],
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Restore a backup; checks the whole file and every conflict before writing anything.

    Identical traces are skipped, so restoring twice is safe; a stored trace that
    differs from the backup's is never overwritten (exit code 4).
    """
    report = run(_restore(store, in_, json))
    if json:
        print_json(asdict(report))
    else:
        stdout().print(
            f"restored {report.written} trace(s), {report.skipped} already present, "
            f"{report.compensations} compensation record(s), {report.lease_tokens} lease "
            f"token(s) (file: {report.file.traces} traces from "
            f"{report.file.header.source_adapter})",
            highlight=False,
        )


async def _restore(url: str | None, path: Path, json: bool) -> ops_backup.RestoreReport:
    async with opened(url) as store:
        with progress("checking, then restoring", None, enabled=not json) as advance:
            return await ops_backup.restore(store, path, progress=advance)


def verify(
    file: Annotated[Path, typer.Argument(help="The backup file to check.", dir_okay=False)],
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="Also compare counts and per-trace digests with this live store; without "
            "it only the file is checked (RANVIER_STORE_URL is not read here).",
            show_default=False,
        ),
    ] = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Check a backup file's lines and checksums, and compare it with a live store."""
    if store is None:
        summary = run(_check(file, json))
        if json:
            print_json({"ok": True, "file": _summary_dict(summary)})
        else:
            stdout().print(
                f"ok: {summary.traces} trace(s), {summary.events} event(s), checksum matches",
                highlight=False,
            )
        return
    result = run(_compare(store, file, json))
    _print_comparison(result, resolve_store_url(store), json)
    if not result.ok:
        raise typer.Exit(EXIT_FAILED)


async def _check(path: Path, json: bool) -> BackupSummary:
    with progress("checking", None, enabled=not json) as advance:
        return ops_backup.check_file(path, progress=advance)


async def _compare(url: str, path: Path, json: bool) -> ops_backup.Comparison:
    async with opened(url, read_only=True) as store:
        with progress("comparing", None, enabled=not json) as advance:
            return await ops_backup.compare(store, path, progress=advance)


def _print_comparison(result: ops_backup.Comparison, url: str, json: bool) -> None:
    assert result.file is not None
    if json:
        print_json(
            {
                "ok": result.ok,
                "file": _summary_dict(result.file),
                "store_traces": result.store_traces,
                "matched": result.matched,
                "missing": result.missing,
                "different": result.different,
                "extra": result.extra,
            }
        )
        return
    verdict = "[green]ok[/]" if result.ok else "[red]MISMATCH[/]"
    lines = [
        f"{verdict}: file {result.file.traces} trace(s), "
        f"store {mask_url(url)} {result.store_traces}",
        f"matched {result.matched}, missing {len(result.missing)}, different "
        f"{len(result.different)}, only in store {result.extra}",
    ]
    for label, ids in (("missing", result.missing), ("different", result.different)):
        if ids:
            lines.append(f"{label}: " + ", ".join(ids[:10]) + (" ..." if len(ids) > 10 else ""))
    stdout().print("\n".join(lines), highlight=False)
