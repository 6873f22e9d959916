"""`ranvier traces list|show`: what is in the store."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Annotated

import orjson
import typer
from rich.table import Table

from ranvier import rules
from ranvier.cli._common import (
    EXIT_BAD_INPUT,
    JsonOption,
    StoreOption,
    StoreOptionsOption,
    fail,
    print_json,
    run,
    stdout,
)
from ranvier.errors import TraceNotFound
from ranvier.model import TracePage, TraceStatus, TraceSummary
from ranvier.ops.codec import trace_to_dict
from ranvier.ops.durations import parse_duration
from ranvier.ops.stores import PAGE_SIZE, opened
from ranvier.ops.timeline import compensation_failed, faults, iso, short, timeline
from ranvier.stores.base import PersistenceStore

app = typer.Typer(help="List traces and show one trace's timeline.", no_args_is_help=True)

_COLUMNS = (
    "trace id",
    "circuit",
    "version",
    "status",
    "last step",
    "events",
    "attempts",
    "updated (UTC)",
    "completed (UTC)",
)


def _row(s: TraceSummary, note: str) -> tuple[str, ...]:
    last = "-" if s.last_step is None else str(s.last_step)
    return (
        s.trace_id, s.circuit, s.schematic_version, s.status.value + note, last,
        str(s.event_count), str(s.attempts), short(s.updated_at_ms), short(s.completed_at_ms),
    )  # fmt: skip


def _table(rows: list[tuple[TraceSummary, str]], *, header: bool) -> Table:
    table = Table(show_header=header, box=None, pad_edge=False)
    for column in _COLUMNS:
        table.add_column(column, no_wrap=column == "trace id")
    for summary, note in rows:
        table.add_row(*_row(summary, note))
    return table


async def _notes(store: PersistenceStore, page: TracePage, poisoned_at: int) -> list[str]:
    """What the status alone does not say: a failed compensation (read from the
    faulted traces of this page only) or a poisoned run."""
    notes = []
    for summary in page.items:
        note = ""
        if summary.status is TraceStatus.FAULTED:
            trace = await store.load(summary.trace_id)
            if trace is not None and compensation_failed(trace):
                note = " (compensation failed)"
        elif summary.status is TraceStatus.INTERRUPTED and summary.attempts >= poisoned_at:
            note = " (poisoned)"
        notes.append(note)
    return notes


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
    poisoned: Annotated[
        bool,
        typer.Option(
            "--poisoned",
            help="Only poisoned traces: interrupted after --max-attempts starts.",
            envvar="RANVIER_POISONED",
        ),
    ] = False,
    max_attempts: Annotated[
        int,
        typer.Option(
            help="The pipelines' max_attempts, for --poisoned and the (poisoned) mark.",
            envvar="RANVIER_MAX_ATTEMPTS",
            min=1,
        ),
    ] = 5,
    json: JsonOption = False,
) -> None:
    """List traces, streaming page by page (JSON: one object per line).

    A faulted trace whose compensation hook failed is marked "(compensation failed)",
    an interrupted one started max_attempts times "(poisoned)".
    """
    if poisoned:
        if status not in (None, TraceStatus.INTERRUPTED):
            fail("--poisoned lists interrupted traces; drop --status", EXIT_BAD_INPUT)
        status = TraceStatus.INTERRUPTED
    query = _Query(status, circuit, older_than, max_attempts if poisoned else None)
    run(_list(store, query, limit, max_attempts, json))


@dataclass(frozen=True, slots=True)
class _Query:
    status: TraceStatus | None
    circuit: str | None
    older_than: str | None
    min_attempts: int | None


async def _list(url: str | None, q: _Query, limit: int, poisoned_at: int, json: bool) -> None:
    window_ms = None if q.older_than is None else parse_duration(q.older_than)
    async with opened(url, read_only=True) as store:
        before = None if window_ms is None else await store.now_ms() - window_ms
        shown, cursor, console = 0, None, stdout()
        while True:
            size = PAGE_SIZE if limit == 0 else min(PAGE_SIZE, limit - shown)
            page = await store.list_traces(
                status=q.status,
                circuit=q.circuit,
                updated_before_ms=before,
                min_attempts=q.min_attempts,
                limit=size,
                cursor=cursor,
            )
            notes = await _notes(store, page, poisoned_at)
            if json:
                for summary, note in zip(page.items, notes, strict=True):
                    print_json({**asdict(summary), "note": note.strip(" ()") or None})
            elif page.items or shown == 0:
                rows = list(zip(page.items, notes, strict=True))
                console.print(_table(rows, header=shown == 0))
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
    async with opened(url, read_only=True) as store:
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
    note = " (compensation failed)" if compensation_failed(trace) else ""
    console.print(
        f"{trace.trace_id}  circuit {trace.circuit} v{trace.schematic_version}  "
        f"status {status.value}{note}\n"
        f"created {iso(trace.created_at_ms)}  updated {iso(trace.updated_at_ms)}  "
        f"completed {iso(trace.completed_at_ms)}  resumed from step "
        f"{'-' if trace.resumed_from_step is None else trace.resumed_from_step}  "
        f"attempts {trace.attempts}"
        + (
            f"\nlease: {lease.holder} (token {lease.token}) until {iso(lease.expires_at_ms)}"
            if lease
            else ""
        )
        + (
            f"\nforked from {trace.forked_from.trace_id} at step {trace.forked_from.step}"
            if trace.forked_from
            else ""
        ),
        highlight=False,
        markup=False,
    )
    console.print("input: " + orjson.dumps(trace.input).decode(), highlight=False, markup=False)
    table = Table(box=None, pad_edge=False)
    for column in ("step", "node", "outcome", "time", "payload bytes", ""):
        table.add_column(column)
    for row in timeline(trace):
        table.add_row(
            "-" if row.step is None else str(row.step), row.node or "-", row.outcome,
            iso(row.timestamp_ms), str(row.payload_bytes), row.mark,
        )  # fmt: skip
    console.print(table)
    for fault in faults(trace):
        console.print(fault, highlight=False, markup=False)
