"""`ranvier compensations list|release|retry`: the claims whose hook never finished."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from ranvier.cli._common import (
    EXIT_NOT_FOUND,
    AppOption,
    JsonOption,
    StoreOption,
    StoreOptionsOption,
    print_json,
    run,
    stdout,
)
from ranvier.model import CompensationRecord
from ranvier.ops import compensations as ops
from ranvier.ops.control import load_app
from ranvier.ops.stores import opened
from ranvier.ops.timeline import iso

app = typer.Typer(
    help="Compensation claims whose hook never finished: list, release, retry.",
    no_args_is_help=True,
)


@app.command("list")
def list_claims(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    limit: Annotated[int, typer.Option(help="At most N claims.", min=1, max=10_000)] = 100,
    json: JsonOption = False,
) -> None:
    """List unfinished claims, oldest first (their hook will not run again by itself)."""
    records = run(_list(store, limit))
    if json:
        for record in records:
            print_json(asdict(record))
        return
    table = Table(box=None, pad_edge=False)
    for column in ("key", "state", "claimed (UTC)"):
        table.add_column(column, no_wrap=column == "key")
    for record in records:
        table.add_row(record.key, record.state.value, iso(record.claimed_at_ms))
    console = stdout()
    console.print(table)
    console.print(f"{len(records)} unfinished claim(s)", highlight=False)


async def _list(url: str | None, limit: int) -> list[CompensationRecord]:
    async with opened(url, read_only=True) as store:
        return await ops.unfinished(store, limit=limit)


@app.command("release")
def release(
    key: Annotated[str, typer.Argument(help="The claim's key: TRACE:CIRCUIT:FAULT_KIND.")],
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Drop an unfinished claim so that the next resume runs the hook again.

    Only when the hook's effect did not happen: releasing a claim whose refund was made
    refunds twice. Exit code 5 if there is no unfinished claim under KEY.
    """
    released = run(_release(store, key))
    if json:
        print_json({"key": key, "released": released})
    else:
        note = "released" if released else "no unfinished claim under"
        stdout().print(f"{note} {key}", highlight=False)
    if not released:
        raise typer.Exit(EXIT_NOT_FOUND)


async def _release(url: str | None, key: str) -> bool:
    async with opened(url, read_only=True) as store:
        return await ops.release(store, key)


@app.command("retry")
def retry(
    trace_id: Annotated[str, typer.Argument(help="The faulted trace whose hook to run again.")],
    app_spec: AppOption,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Release the trace's unfinished claim and run its compensation hook now (--app
    gives the pipeline's hook and its resources)."""
    retried = run(_retry(store, trace_id, app_spec))
    if json:
        print_json(asdict(retried))
    else:
        stdout().print(
            f"{retried.trace_id}: claim {retried.key} "
            f"{'released' if retried.released else 'was not held'}; hook: {retried.result}",
            highlight=False,
        )


async def _retry(url: str | None, trace_id: str, spec: str) -> ops.Retried:
    worker = load_app(spec)
    async with opened(url, read_only=True) as store:
        return await ops.retry(store, trace_id, worker)
