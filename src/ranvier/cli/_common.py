"""What every command shares: options, running a coroutine, one-line errors, output."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from typing import Annotated, Any, NoReturn, TypeVar

import orjson
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ranvier.errors import (
    BackupCorrupt,
    CheckpointConflict,
    CircuitMismatch,
    InvalidInput,
    LeaseLost,
    RanvierError,
    RestoreConflict,
    SchemaMismatch,
    SchemaMissing,
    StoreUnavailable,
    TraceBusy,
    TraceCompleted,
    TraceNotFound,
    TracePoisoned,
    VersionMismatch,
)
from ranvier.ops.stores import parse_option, set_default_options

_T = TypeVar("_T")

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3
EXIT_CONFLICT = 4
EXIT_NOT_FOUND = 5
EXIT_CORRUPT = 6
EXIT_RUN_FAULTED = 7
"""`resume`/`fork`: the run ended as a fault (compensated or not)."""
EXIT_RUN_UNFINISHED = 8
"""`resume`/`fork`: the run stopped without completing (lease lost, store down,
compensation unfinished) or ended cancelled."""
EXIT_RECOVER_FAILED = 9
"""`recover`: at least one trace failed to finish (see the report)."""
EXIT_POISONED = 10
"""`recover` found poisoned traces (and none failed); `resume` of a poisoned trace."""
EXIT_NO_SCHEMA = 11
"""A read-only command found no ranvier schema at the store (nothing was created)."""

_EXIT_CODES: list[tuple[type[BaseException] | tuple[type[BaseException], ...], int]] = [
    (BackupCorrupt, EXIT_CORRUPT),
    (TracePoisoned, EXIT_POISONED),
    (SchemaMissing, EXIT_NO_SCHEMA),
    (InvalidInput, EXIT_BAD_INPUT),
    (StoreUnavailable, EXIT_UNAVAILABLE),
    (TraceNotFound, EXIT_NOT_FOUND),
    (
        (
            RestoreConflict,
            TraceCompleted,
            TraceBusy,
            CheckpointConflict,
            CircuitMismatch,
            LeaseLost,
        ),
        EXIT_CONFLICT,
    ),
    ((SchemaMismatch, VersionMismatch), EXIT_BAD_INPUT),
]

StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        envvar="RANVIER_STORE_URL",
        help="Store URL: sqlite:///path.db, postgresql://..., redis://..., memory:// "
        "(default sqlite:///ranvier.db).",
        show_default=False,
    ),
]


def _set_store_options(values: list[str] | None) -> list[str]:
    with errors_as_exit():
        set_default_options(dict(parse_option(v) for v in values or []))
    return values or []  # typer's list conversion wants a list, never None


StoreOptionsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--store-option",
        "-o",
        metavar="KEY=VALUE",
        envvar="RANVIER_STORE_OPTIONS",
        help="Adapter option KEY=VALUE, e.g. table_prefix=billing (PostgreSQL), "
        "prefix=ranvier:persistence:prod (Redis), busy_timeout_ms=10000 (SQLite); "
        "repeatable (space-separated in the env var).",
        show_default=False,
        callback=_set_store_options,
    ),
]
JsonOption = Annotated[
    bool,
    typer.Option("--json", envvar="RANVIER_JSON", help="Print JSON for scripts."),
]
AppOption = Annotated[
    str,
    typer.Option(
        "--app",
        metavar="MODULE:ATTR",
        envvar="RANVIER_APP",
        help="What a worker needs, as module:attribute naming a ranvier.App (pipelines "
        "and their resources), an Axon or a list of Axons.",
    ),
]


PIPE_WIDTH = 100_000
"""Output that is not a terminal is never cut to a width: `| grep` finds whole values."""


def stdout() -> Console:
    width = None if sys.stdout.isatty() else PIPE_WIDTH
    return Console(file=sys.stdout, soft_wrap=True, width=width)


def stderr() -> Console:
    return Console(file=sys.stderr, soft_wrap=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    stderr().print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    raise typer.Exit(code)


def exit_code_of(exc: BaseException) -> int:
    for kinds, code in _EXIT_CODES:
        if isinstance(exc, kinds):
            return code
    return EXIT_FAILED


@contextmanager
def errors_as_exit() -> Iterator[None]:
    """Ranvier and file errors become one line on stderr and an exit code."""
    try:
        yield
    except RanvierError as exc:
        fail(str(exc).replace("[", r"\["), exit_code_of(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        fail(f"{exc.strerror or exc}{where}", EXIT_FAILED)


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a command's coroutine under `errors_as_exit`."""
    with errors_as_exit():
        return asyncio.run(coro)
    raise AssertionError("unreachable")  # errors_as_exit never swallows


def _default(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(value: Any) -> None:
    data = orjson.dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS)
    sys.stdout.write(data.decode() + "\n")
    sys.stdout.flush()


@contextmanager
def progress(
    description: str, total: int | None, *, enabled: bool
) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr (so `--json` output stays clean); yields `advance(n)`."""
    if not enabled or os.environ.get("RANVIER_NO_PROGRESS"):
        yield lambda _: None
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=stderr(),
        transient=True,
    )
    with bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)
