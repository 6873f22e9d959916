"""`ranvier traces list|show`: what is in the store."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from ranvier.cli._common import JsonOption, StoreOption, StoreOptionsOption, print_json, run, stdout
from ranvier.errors import TraceNotFound
from ranvier.model import TraceStatus, TraceSummary
from ranvier.ops.codec import trace_to_dict
from ranvier.ops.durations import parse_duration
from ranvier.ops.stores import PAGE_SIZE, opened
from ranvier.ops.timeline import iso, short, timeline
from ranvier.stores import rules

app = typer.Typer(help="List traces and show one trace's timeline.", no_args_is_help=True)

_COLUMNS = (
    "trace id",
    "circuit",
    "version",
    "status",
    "last step",
    "events",
    "updated (UTC)",
    "completed (UTC)",
)


def _row(s: TraceSummary) -> tuple[str, ...]:
    last = "-" if s.last_step is None else str(s.last_step)
    return (
        s.trace_id, s.circuit, s.schematic_version, s.status.value, last,
        str(s.event_count), short(s.updated_at_ms), short(s.completed_at_ms),
    )  # fmt: skip


def _table(rows: list[TraceSummary], *, header: bool) -> Table:
    table = Table(show_header=header, box=None, pad_edge=False)
    for column in _COLUMNS:
        table.add_column(column, no_wrap=column == "trace id")
    for summary in rows:
        table.add_row(*_row(summary))
    return table


@app.command("list")
def list_traces(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    status: Annotated[
        TraceStatus | None,
        typer.Option(
            help="Only traces in this status.",
            envvar="RANVIER_TRACE_STATUS",
        ),
    ] = None,
    circuit: Annotated[
        str | None,
        typer.Option(help="Only traces of this circuit.", envvar="RANVIER_CIRCUIT"),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            help="Only traces not updated for this long, by the store's clock: 7d, 12h, 15m, 90s.",
            envvar="RANVIER_OLDER_THAN",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            help="Show at most N traces; 0 for all.",
            envvar="RANVIER_LIMIT",
            min=0,
        ),
    ] = 100,
    json: JsonOption = False,
) -> None:
    """List traces, streaming page by page (JSON: one object per line)."""
    run(_list(store, status, circuit, older_than, limit, json))


async def _list(
    url: str | None,
    status: TraceStatus | None,
    circuit: str | None,
    older_than: str | None,
    limit: int,
    json: bool,
) -> None:
    window_ms = None if older_than is None else parse_duration(older_than)
    async with opened(url) as store:
        before = None if window_ms is None else await store.now_ms() - window_ms
        shown, cursor, console = 0, None, stdout()
        while True:
            size = PAGE_SIZE if limit == 0 else min(PAGE_SIZE, limit - shown)
            page = await store.list_traces(
                status=status, circuit=circuit, updated_before_ms=before, limit=size, cursor=cursor
            )
            if json:
                for summary in page.items:
                    print_json(asdict(summary))
            elif page.items or shown == 0:
                console.print(_table(list(page.items), header=shown == 0))
            shown += len(page.items)
            cursor = page.next_cursor
            if cursor is None or (limit and shown >= limit):
                break
        if not json:
            more = " (more: raise --limit)" if cursor is not None else ""
            console.print(f"{shown} trace(s){more}", highlight=False)


@app.command("show")
def show(
    trace_id: Annotated[str, typer.Argument(help="The trace to show.")],
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Show one trace: its state and a timeline (superseded events and interventions marked)."""
    run(_show(store, trace_id, json))


async def _show(url: str | None, trace_id: str, json: bool) -> None:
    async with opened(url) as store:
        trace = await store.load(trace_id)
        if trace is None:
            raise TraceNotFound(f"no trace is stored under {trace_id!r}")
        lease = await store.get_lease(trace_id)
    status = rules.trace_status(trace.completion, lease is not None)
    if json:
        print_json(
            {**trace_to_dict(trace), "status": status.value, "digest": rules.trace_digest(trace)}
        )
        return
    console = stdout()
    console.print(
        f"[bold]{trace.trace_id}[/]  circuit {trace.circuit} v{trace.schematic_version}  "
        f"status [bold]{status.value}[/]\n"
        f"created {iso(trace.created_at_ms)}  updated {iso(trace.updated_at_ms)}  "
        f"completed {iso(trace.completed_at_ms)}  resumed from step "
        f"{'-' if trace.resumed_from_step is None else trace.resumed_from_step}"
        + (
            f"\nlease: {lease.holder} (token {lease.token}) until {iso(lease.expires_at_ms)}"
            if lease
            else ""
        ),
        highlight=False,
    )
    table = Table(box=None, pad_edge=False)
    for column in ("step", "node", "outcome", "time", "payload bytes", ""):
        table.add_column(column)
    for row in timeline(trace):
        table.add_row(
            "-" if row.step is None else str(row.step), row.node or "-", row.outcome,
            iso(row.timestamp_ms), str(row.payload_bytes), row.mark,
        )  # fmt: skip
    console.print(table)
