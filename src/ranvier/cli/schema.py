"""`ranvier schema ensure|show`."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ranvier.cli._common import JsonOption, StoreOption, StoreOptionsOption, print_json, run, stdout
from ranvier.ops import schema as ops_schema
from ranvier.ops.stores import opened
from ranvier.stores.url import resolve_store_url

app = typer.Typer(help="Create or describe the store's tables / keys.", no_args_is_help=True)


def print_info(info: dict[str, Any], json: bool) -> None:
    if json:
        print_json(info)
        return
    console = stdout()
    for key, value in info.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in value.items())
        elif isinstance(value, list):
            value = "\n" + "\n".join(f"  {v}" for v in value) if value else "-"
        console.print(f"[bold]{key}[/]: {value}", highlight=False)


@app.command("ensure")
def ensure(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    partitions: Annotated[
        int | None,
        typer.Option(
            help="PostgreSQL only: create the events table PARTITION BY HASH (trace_id) with "
            "N buckets.",
            envvar="RANVIER_PARTITIONS",
            min=1,
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Create the schema if missing (idempotent; safe from many processes at once)."""
    print_info(run(ops_schema.ensure(store, partitions=partitions)), json)


@app.command("show")
def show(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Show the schema version and the tables or key shapes the store uses."""
    print_info(run(_show(store)), json)


async def _show(url: str | None) -> dict[str, Any]:
    async with opened(url, read_only=True) as store:
        return await ops_schema.describe(store, resolve_store_url(url))
