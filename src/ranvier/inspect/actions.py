"""The actions: resume, intervene, cancel, fork, release or retry a compensation claim.

Each handler checks its form, acts through `ranvier.ops.control` and the runtime, logs
itself in the action log, and says where the browser goes next. Runs of the pipeline
(resume, fork, compensation) continue in the background: the page follows them live.
Access control (the flag, the token, CSRF) is decided before a handler is called.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson

from ranvier import rules
from ranvier.errors import InvalidInput, TraceBusy, TraceNotFound
from ranvier.inspect.state import Inspector
from ranvier.inspect.trace_view import TraceView, trace_view
from ranvier.model import CompletionState, JSONValue
from ranvier.ops import control
from ranvier.runtime import App, Axon, RunResult, compensate

Form = Mapping[str, str]
FORK_WAIT_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Done:
    """Where to go after an action."""

    trace_id: str


Handler = Callable[[Inspector, TraceView, Form, str], Awaitable[Done]]


def trace_url(trace_id: str) -> str:
    return "/trace?" + urlencode({"id": trace_id})


def parse_json(text: str | None, what: str, *, optional: bool = False) -> JSONValue:
    """JSON typed in a form; `InvalidInput` saying what is wrong with it."""
    if text is None or not text.strip():
        if optional:
            return None
        raise InvalidInput(f'{what} is empty; write JSON, e.g. {{"qty": 2}} or null')
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"{what} is not valid JSON: {exc}") from None
    rules.encode_payload(value)  # the store's own rules (NaN, size, depth) say no early
    return value


def _pipeline(inspector: Inspector, view: TraceView, action: str) -> tuple[App, Axon]:
    axon = inspector.pipeline(view.trace.circuit)
    if inspector.app is None or axon is None:
        raise InvalidInput(
            f"{action} runs the pipeline of circuit {view.trace.circuit!r}: start the "
            "inspector with --app module:attribute naming it"
        )
    return inspector.app, axon


def _step(view: TraceView, form: Form, field: str) -> str:
    node = (form.get(field) or "").strip()
    rules.validate_id("node", node)
    if view.pipeline_known and node not in view.steps:
        raise InvalidInput(
            f"the pipeline has no step {node!r}; pick one of {', '.join(view.steps)}"
        )
    return node


def _describe(result: RunResult) -> str:
    completion = result.completion.value if result.completion else "open"
    return f"{result.status.value}, completion {completion}, {result.steps_run} step(s) run"


def _in_background(
    inspector: Inspector,
    trace_id: str,
    action: str,
    client: str,
    work: Callable[[], Awaitable[str]],
) -> None:
    """Run `work` (which returns what to log) after the response; log how it ended."""

    async def run() -> None:
        try:
            detail = await work()
        except asyncio.CancelledError:
            message = "the inspector stopped during the run"
            inspector.actions.record(trace_id, action, message, "cancelled", client)
            raise
        except Exception as exc:
            inspector.actions.record(trace_id, action, repr(exc), "failed", client)
            return
        inspector.actions.record(trace_id, action, detail, "finished", client)
        inspector.forget_counts()

    inspector.spawn(run())


async def resume(inspector: Inspector, view: TraceView, form: Form, client: str) -> Done:
    app, _ = _pipeline(inspector, view, "resume")
    trace_id, force = view.trace.trace_id, form.get("force") in ("1", "on")
    if view.lease is not None:
        raise TraceBusy(f"{view.lease.holder} holds the lease of {trace_id!r}; it is running")
    if view.poisoned and not force:
        raise InvalidInput(f"trace {trace_id!r} is poisoned; tick 'force' to resume it anyway")
    detail = "force" if force else ""
    inspector.actions.record(trace_id, "resume", detail, "started", client)

    async def work() -> str:
        return _describe(await control.resume(inspector.store, trace_id, app, force=force))

    _in_background(inspector, trace_id, "resume", client, work)
    await _until_started(inspector, trace_id)
    return Done(trace_id=trace_id)


async def intervene(inspector: Inspector, view: TraceView, form: Form, client: str) -> Done:
    node = _step(view, form, "node")
    payload = parse_json(form.get("payload"), "the payload")
    trace_id = view.trace.trace_id
    await control.intervene(inspector.store, trace_id, node, payload)
    inspector.actions.record(trace_id, "intervene", f"at {node}", "ok", client)
    return Done(trace_id=trace_id)


async def cancel(inspector: Inspector, view: TraceView, form: Form, client: str) -> Done:
    trace_id = view.trace.trace_id
    changed = await control.cancel(inspector.store, trace_id)
    inspector.actions.record(
        trace_id, "cancel", "" if changed else "already cancelled", "ok", client
    )
    return Done(trace_id=trace_id)


async def fork(inspector: Inspector, view: TraceView, form: Form, client: str) -> Done:
    app, _ = _pipeline(inspector, view, "fork")
    at = _step(view, form, "at")
    value = parse_json(form.get("value"), "the value", optional=True)
    new_id = rules.validate_id(
        "new trace id", (form.get("new_id") or "").strip() or uuid.uuid4().hex
    )
    source = view.trace.trace_id
    if await inspector.store.load(new_id) is not None:
        raise InvalidInput(f"a trace is stored under {new_id!r} already; pick a new id")
    inspector.actions.record(source, "fork", f"at {at} into {new_id}", "started", client)

    async def work() -> str:
        result = await control.fork(inspector.store, source, app, at=at, new_id=new_id, value=value)
        inspector.actions.record(new_id, "forked", f"from {source} at {at}", "ok", client)
        return f"into {new_id}: {_describe(result)}"

    _in_background(inspector, source, "fork", client, work)
    for _ in range(int(FORK_WAIT_S / 0.05)):  # show the new trace once it is stored
        if await inspector.store.load(new_id) is not None:
            return Done(trace_id=new_id)
        await asyncio.sleep(0.05)
    return Done(trace_id=source)


def _claim(view: TraceView, form: Form) -> str:
    key = form.get("key") or ""
    if key not in {c.key for c in view.compensations}:
        raise InvalidInput(f"{key!r} is not a compensation key of trace {view.trace.trace_id!r}")
    return key


async def release(inspector: Inspector, view: TraceView, form: Form, client: str) -> Done:
    key = _claim(view, form)
    released = await inspector.store.compensations.release(key)
    outcome = "ok" if released else "nothing to release"
    inspector.actions.record(view.trace.trace_id, "release claim", key, outcome, client)
    return Done(trace_id=view.trace.trace_id)


async def retry_compensation(
    inspector: Inspector, view: TraceView, form: Form, client: str
) -> Done:
    app, axon = _pipeline(inspector, view, "retry compensation")
    key, trace_id = _claim(view, form), view.trace.trace_id
    hook = axon.compensation
    if hook is None:
        raise InvalidInput(f"pipeline {axon.name!r} has no compensation hook")
    if view.trace.completion is not CompletionState.FAULT:
        raise InvalidInput(f"trace {trace_id!r} is not faulted: nothing to compensate")
    released = await inspector.store.compensations.release(key)
    inspector.actions.record(
        trace_id, "retry compensation", key + (" (claim released)" if released else ""),
        "started", client,
    )  # fmt: skip

    async def work() -> str:
        async with app.open_resources() as resources:
            result = await compensate(
                inspector.store, trace_id, hook, retry=axon.compensation_retry, resources=resources
            )
        return result.value

    _in_background(inspector, trace_id, "retry compensation", client, work)
    return Done(trace_id=trace_id)


async def _until_started(inspector: Inspector, trace_id: str, wait_s: float = 1.0) -> None:
    """Give a background run a moment to take its lease, so the page shows it running."""
    for _ in range(int(wait_s / 0.05)):
        if await inspector.store.get_lease(trace_id) is not None or not inspector.busy:
            return
        await asyncio.sleep(0.05)


HANDLERS: dict[str, Handler] = {
    "resume": resume,
    "intervene": intervene,
    "cancel": cancel,
    "fork": fork,
    "release": release,
    "compensate": retry_compensation,
}


async def perform(inspector: Inspector, name: str, form: Form, client: str) -> Done:
    """Run action `name` on the form's trace (access already checked)."""
    handler = HANDLERS.get(name)
    if handler is None:
        raise InvalidInput(f"no action {name!r}; actions are {', '.join(HANDLERS)}")
    trace_id = (form.get("trace_id") or "").strip()
    try:
        view = await trace_view(inspector, trace_id)
    except TraceNotFound:
        inspector.actions.record(trace_id, name, "no such trace", "failed", client)
        raise
    try:
        done = await handler(inspector, view, form, client)
    except Exception as exc:
        inspector.actions.record(trace_id, name, str(exc), "failed", client)
        raise
    inspector.forget_counts()
    return done
