"""The `ranvier` command: one subcommand per runbook task.

Thin by design: each command parses its options, calls `ranvier.ops`, and prints a
table for people or JSON for scripts. Errors are one line on stderr with an exit code:
1 failed check, 2 bad input, 3 store unreachable, 4 conflict, 5 trace not found,
6 corrupt backup; runs: 7 ended as a fault, 8 did not complete, 9 recover had failures,
10 poisoned traces, 11 no ranvier schema at the store (docs/operations.md lists them all).
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from ranvier.cli import backup, compensations, control, maintenance, metrics, schema, traces
from ranvier.cli._common import EXIT_FAILED, fail

app = typer.Typer(
    name="ranvier",
    help="Operate ranvier persistence stores: schema, traces, recovery, retention, "
    "backup, health, benchmarks and metrics. Every option also reads a RANVIER_* "
    "environment variable; --store defaults to RANVIER_STORE_URL, else sqlite:///ranvier.db.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from ranvier import __version__

        print(f"ranvier {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Operate ranvier persistence stores."""


app.add_typer(schema.app, name="schema")
app.add_typer(traces.app, name="traces")
app.command(rich_help_panel="Recovery")(control.resume)
app.command(rich_help_panel="Recovery")(control.recover)
app.command(rich_help_panel="Recovery")(control.fork)
app.command(rich_help_panel="Recovery")(control.intervene)
app.command(rich_help_panel="Recovery")(control.cancel)
app.add_typer(compensations.app, name="compensations", rich_help_panel="Recovery")
app.command(rich_help_panel="Retention and backup")(maintenance.purge)
app.command(rich_help_panel="Retention and backup")(backup.backup)
app.command(rich_help_panel="Retention and backup")(backup.restore)
app.command(rich_help_panel="Retention and backup")(backup.verify)
app.command(rich_help_panel="Health")(maintenance.doctor)
app.command(rich_help_panel="Health")(maintenance.bench)
app.add_typer(metrics.app, name="metrics", rich_help_panel="Health")
app.command(rich_help_panel="Health")(__import__("ranvier.cli.inspect", fromlist=["_"]).inspect)
app.command(rich_help_panel="Try it")(control.demo)


def main() -> None:
    """Console entry point: never shows a traceback unless RANVIER_DEBUG is set."""
    try:
        app()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("RANVIER_DEBUG"):
            raise
        try:
            fail(
                f"unexpected {type(exc).__name__}: {exc} (set RANVIER_DEBUG=1 for the traceback)",
                EXIT_FAILED,
            )
        except typer.Exit as exit_:
            sys.exit(exit_.exit_code)


__all__ = ["app", "main"]
