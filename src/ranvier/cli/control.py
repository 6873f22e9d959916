"""`ranvier resume|recover|intervene|cancel|demo`: drive traces."""

from __future__ import annotations

import importlib
from dataclasses import asdict
from typing import Annotated, Any

import typer

from ranvier.cli._common import (
    AppOption,
    JsonOption,
    StoreOption,
    StoreOptionsOption,
    print_json,
    run,
    stdout,
)
from ranvier.model import Intervention
from ranvier.ops import control
from ranvier.ops.stores import opened
from ranvier.runtime import RecoveryReport, RunResult


def _result_line(result: RunResult) -> str:
    completion = "still open" if result.completion is None else result.completion.value
    return (
        f"{result.trace_id}: {result.status.value} ({completion}), "
        f"{result.steps_run} step(s) run; value: {result.value!r}"
    )


def resume(
    trace_id: Annotated[str, typer.Argument(help="The interrupted trace to resume.")],
    app: AppOption,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Resume one interrupted trace with its pipeline, after its last checkpoint."""
    result = run(_resume(store, trace_id, app))
    if json:
        print_json(
            {
                "trace_id": result.trace_id,
                "status": result.status.value,
                "completion": None if result.completion is None else result.completion.value,
                "steps_run": result.steps_run,
                "resumed": result.resumed,
                "value": result.value,
            }
        )
    else:
        stdout().print(_result_line(result), highlight=False)


async def _resume(url: str | None, trace_id: str, app: str) -> RunResult:
    axons = control.load_app(app)
    async with opened(url) as store:
        return await control.resume(store, trace_id, axons)


def recover(
    app: AppOption,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep looking for newly interrupted traces until Ctrl-C / SIGTERM.",
            envvar="RANVIER_WATCH",
        ),
    ] = False,
    concurrency: Annotated[
        int,
        typer.Option(help="Traces resumed at once.", envvar="RANVIER_RECOVER_CONCURRENCY", min=1),
    ] = 8,
    batch: Annotated[
        int,
        typer.Option(help="Traces listed per pass.", envvar="RANVIER_RECOVER_BATCH", min=1),
    ] = 100,
    poll_interval: Annotated[
        float,
        typer.Option(
            help="Seconds between looks in --watch mode.",
            envvar="RANVIER_RECOVER_POLL_INTERVAL",
            min=0.01,
        ),
    ] = 5.0,
    json: JsonOption = False,
) -> None:
    """Resume every interrupted trace of the given pipelines; safe from many workers at once."""
    report = run(_recover(store, app, watch, concurrency, batch, poll_interval))
    if json:
        print_json({k: v for k, v in asdict(report).items() if k != "keep"})
    else:
        stdout().print(str(report), highlight=False)


async def _recover(
    url: str | None, app: str, watch: bool, concurrency: int, batch: int, poll: float
) -> RecoveryReport:
    axons = control.load_app(app)
    async with opened(url) as store:
        return await control.recover(
            store,
            axons,
            watch=watch,
            concurrency=concurrency,
            batch_size=batch,
            poll_interval=poll,
        )


def intervene(
    trace_id: Annotated[str, typer.Argument(help="The trace to steer.")],
    node: Annotated[str, typer.Option(help="Resume at this node.", envvar="RANVIER_NODE")],
    payload: Annotated[
        str | None,
        typer.Option(
            help="JSON input for that node, replacing the checkpointed one.",
            envvar="RANVIER_PAYLOAD",
        ),
    ] = None,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Record an intervention: the next resume starts at NODE with PAYLOAD."""
    result = run(_intervene(store, trace_id, node, payload))
    if json:
        print_json({"trace_id": trace_id, **asdict(result)})
    else:
        stdout().print(f"intervention stored: {trace_id} resumes at {node}", highlight=False)


async def _intervene(
    url: str | None, trace_id: str, node: str, payload: str | None
) -> Intervention:
    value = control.parse_payload(payload)
    async with opened(url) as store:
        return await control.intervene(store, trace_id, node, value)


def cancel(
    trace_id: Annotated[str, typer.Argument(help="The trace to cancel.")],
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Cancel a trace: it completes as CANCELLED; a worker running it stops at its next step."""
    changed = run(_cancel(store, trace_id))
    if json:
        print_json({"trace_id": trace_id, "completion": "cancelled", "changed": changed})
    else:
        note = "cancelled" if changed else "was already cancelled:"
        stdout().print(f"{note} {trace_id}", highlight=False)


async def _cancel(url: str | None, trace_id: str) -> bool:
    async with opened(url) as store:
        return await control.cancel(store, trace_id)


def demo(store: StoreOption = None) -> None:
    """Run the demo pipeline: a crash, a resume and a compensation, step by step."""
    module: Any = importlib.import_module("ranvier.demo")
    raise typer.Exit(int(module.main(store)))
