"""`ranvier resume|recover|intervene|cancel|demo`: drive traces."""

from __future__ import annotations

import importlib
from dataclasses import asdict
from typing import Annotated, Any

import typer

from ranvier.cli._common import (
    EXIT_BAD_INPUT,
    EXIT_POISONED,
    EXIT_RECOVER_FAILED,
    EXIT_RUN_FAULTED,
    EXIT_RUN_UNFINISHED,
    AppOption,
    JsonOption,
    StoreOption,
    StoreOptionsOption,
    fail,
    print_json,
    run,
    stdout,
)
from ranvier.model import CompletionState, Intervention, OutcomeKind
from ranvier.ops import control
from ranvier.ops.stores import opened
from ranvier.runtime import RecoveryReport, RunResult


def _result_line(result: RunResult) -> str:
    completion = "still open" if result.completion is None else result.completion.value
    line = (
        f"{result.trace_id}: {result.status.value} ({completion}), "
        f"{result.steps_run} step(s) run; value: {result.value!r}"
    )
    fault = result.outcome
    if fault.kind is OutcomeKind.FAULT:
        line += f"\nfault {fault.fault_kind}: {fault.message}"
    return line


def run_exit_code(result: RunResult) -> int:
    """0 when the run succeeded; see EXIT_RUN_FAULTED and EXIT_RUN_UNFINISHED."""
    if result.completion is CompletionState.SUCCESS:
        return 0
    if result.completion in (CompletionState.FAULT, CompletionState.COMPENSATED):
        return EXIT_RUN_FAULTED
    return EXIT_RUN_UNFINISHED


def _report_run(result: RunResult, json: bool) -> None:
    code = run_exit_code(result)
    if json:
        outcome = result.outcome
        print_json(
            {
                "trace_id": result.trace_id,
                "status": result.status.value,
                "completion": None if result.completion is None else result.completion.value,
                "steps_run": result.steps_run,
                "resumed": result.resumed,
                "value": result.value,
                "fault": (
                    {"kind": outcome.fault_kind, "message": outcome.message}
                    if outcome.kind is OutcomeKind.FAULT
                    else None
                ),
                "exit_code": code,
            }
        )
    else:
        stdout().print(_result_line(result), highlight=False)
    if code:
        raise typer.Exit(code)


def resume(
    trace_id: Annotated[str, typer.Argument(help="The interrupted trace to resume.")],
    app: AppOption,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Resume a poisoned trace (started max_attempts times without completing).",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Resume one interrupted trace with its pipeline, after its last checkpoint.

    Exit code 0 if the run succeeded, 7 if it ended as a fault, 8 if it did not
    complete (or was cancelled), 10 if the trace is poisoned (use --force).
    """
    _report_run(run(_resume(store, trace_id, app, force)), json)


async def _resume(url: str | None, trace_id: str, app: str, force: bool) -> RunResult:
    worker = control.load_app(app)
    async with opened(url) as store:
        return await control.resume(store, trace_id, worker, force=force)


def fork(
    trace_id: Annotated[str, typer.Argument(help="The trace to fork (left as it is).")],
    at: Annotated[str, typer.Option("--at", help="The step to run again (and all after it).")],
    app: AppOption,
    new_id: Annotated[
        str | None,
        typer.Option("--new-id", help="The new trace's id (default: a random one)."),
    ] = None,
    payload: Annotated[
        str | None,
        typer.Option(
            help="JSON input for the step --at (default: the value of the checkpoint before it)."
        ),
    ] = None,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Re-run a trace from one step, after a fix, as a new trace that records its source.

    The source's checkpoints before --at are copied, so the steps before it do not run
    again. Exit codes as for resume.
    """
    _report_run(run(_fork(store, trace_id, app, at, new_id, payload)), json)


async def _fork(
    url: str | None, trace_id: str, app: str, at: str, new_id: str | None, payload: str | None
) -> RunResult:
    worker = control.load_app(app)
    value = control.parse_payload(payload)
    async with opened(url) as store:
        return await control.fork(store, trace_id, worker, at=at, new_id=new_id, value=value)


def recover_exit_code(report: RecoveryReport) -> int:
    if report.failed:
        return EXIT_RECOVER_FAILED
    return EXIT_POISONED if report.poisoned else 0


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
    """Resume every interrupted trace of the given pipelines; safe from many workers at once.

    Exit code 0 if every trace taken was finished, 9 if some failed, 10 if some are
    poisoned (and none failed).
    """
    report = run(_recover(store, app, watch, concurrency, batch, poll_interval))
    code = recover_exit_code(report)
    if json:
        print_json({**{k: v for k, v in asdict(report).items() if k != "keep"}, "exit_code": code})
    else:
        stdout().print(str(report), highlight=False)
    if code:
        raise typer.Exit(code)


async def _recover(
    url: str | None, app: str, watch: bool, concurrency: int, batch: int, poll: float
) -> RecoveryReport:
    worker = control.load_app(app)
    async with opened(url) as store:
        return await control.recover(
            store,
            worker,
            watch=watch,
            concurrency=concurrency,
            batch_size=batch,
            poll_interval=poll,
        )


def intervene(
    trace_id: Annotated[str, typer.Argument(help="The trace to steer.")],
    node: Annotated[
        str | None,
        typer.Option(help="Resume at this step.", envvar="RANVIER_NODE", metavar="STEP"),
    ] = None,
    payload: Annotated[
        str | None,
        typer.Option(
            help="JSON input for that step, replacing the checkpointed one (required; "
            "--payload null for a null input).",
            envvar="RANVIER_PAYLOAD",
            metavar="JSON",
        ),
    ] = None,
    clear: Annotated[
        bool, typer.Option("--clear", help="Withdraw the trace's pending intervention.")
    ] = False,
    app: Annotated[
        str | None,
        typer.Option(
            "--app",
            metavar="MODULE:ATTR",
            envvar="RANVIER_APP",
            help="The pipelines: the step is checked against the trace's pipeline.",
        ),
    ] = None,
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    json: JsonOption = False,
) -> None:
    """Record an intervention: the next resume starts at STEP with PAYLOAD (--clear
    withdraws a pending one; the withdrawal is kept in the trace's history)."""
    if clear:
        if node is not None or payload is not None:
            fail("--clear takes no --node or --payload", EXIT_BAD_INPUT)
        cleared = run(_clear(store, trace_id))
        if json:
            print_json({"trace_id": trace_id, "cleared": cleared})
        else:
            note = "pending intervention withdrawn" if cleared else "no pending intervention"
            stdout().print(f"{trace_id}: {note}", highlight=False)
        return
    if node is None:
        fail("give --node STEP (and --payload JSON), or --clear", EXIT_BAD_INPUT)
    if payload is None:
        fail(
            "give --payload JSON for the step's input (--payload null for a null input)",
            EXIT_BAD_INPUT,
        )
    result = run(_intervene(store, trace_id, node, payload, app))
    if json:
        print_json({"trace_id": trace_id, **asdict(result)})
    else:
        stdout().print(f"intervention stored: {trace_id} resumes at {node}", highlight=False)


async def _intervene(
    url: str | None, trace_id: str, node: str, payload: str, app: str | None
) -> Intervention:
    value = control.parse_payload(payload)
    worker = None if app is None else control.load_app(app)
    async with opened(url, read_only=True) as store:
        return await control.intervene(store, trace_id, node, value, worker)


async def _clear(url: str | None, trace_id: str) -> bool:
    async with opened(url, read_only=True) as store:
        return await control.clear_intervention(store, trace_id)


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


def demo(
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="URL",
            help="Where the demo writes (default: ./ranvier-demo.db; RANVIER_STORE_URL is "
            "never used, so the demo cannot write into your store unless you ask).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the demo pipeline: a crash, a resume and a compensation, step by step."""
    module: Any = importlib.import_module("ranvier.cli.demo")
    raise typer.Exit(int(module.main(store)))
