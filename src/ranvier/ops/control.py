"""Driving traces from the command line: resume, recover, fork, intervene, cancel.

`--app module:attribute` names what a worker needs: an `App` (pipelines and their
resources), an Axon or a list of Axons, imported from the current directory like
uvicorn's `module:app`.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any

import orjson

from ranvier import rules
from ranvier.errors import InvalidInput, TraceNotFound
from ranvier.model import Intervention, JSONValue, PersistedTrace
from ranvier.runtime import App, Axon, RecoveryReport, RunResult
from ranvier.runtime import cancel as runtime_cancel
from ranvier.runtime import recover as runtime_recover
from ranvier.stores.base import PersistenceStore


def circuit_of(axon: Any) -> str:
    if not isinstance(axon, Axon):
        raise InvalidInput(f"{axon!r} is not an Axon")
    return axon.name


def load_app(spec: str) -> App:
    """The `App` named by `module:attribute`: an App, an Axon, or a list/tuple of Axons.

    The module is imported, not run: keep `asyncio.run(...)` under
    `if __name__ == "__main__":`.
    """
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise InvalidInput(f"--app {spec!r} must look like module:attribute, e.g. myapp.flows:app")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        value: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise InvalidInput(f"--app: cannot import {module_name!r} ({exc})") from None
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise InvalidInput(f"--app: {module_name!r} has no attribute {attribute!r}")
        value = getattr(value, part)
    if isinstance(value, App):
        return value
    axons: list[Any] = list(value) if isinstance(value, list | tuple) else [value]
    for axon in axons:
        if not isinstance(axon, Axon):
            raise InvalidInput(
                f"--app {spec!r} names {axon!r}: not an Axon, a list of Axons or an App"
            )
    return App(pipelines=axons)


def by_circuit(axons: Sequence[Axon]) -> dict[str, Axon]:
    return {circuit_of(a): a for a in axons}


def _axon_for(app: App, circuit: str, trace_id: str) -> Axon:
    axon = by_circuit(app.pipelines).get(circuit)
    if axon is None:
        known = ", ".join(sorted(by_circuit(app.pipelines))) or "none"
        raise InvalidInput(
            f"trace {trace_id!r} belongs to circuit {circuit!r}; --app names only {known}"
        )
    return axon


async def _load(store: PersistenceStore, trace_id: str) -> PersistedTrace:
    trace = await store.load(trace_id)
    if trace is None:
        raise TraceNotFound(f"no trace is stored under {trace_id!r}")
    return trace


async def resume(
    store: PersistenceStore, trace_id: str, app: App, *, force: bool = False
) -> RunResult:
    """Resume one trace with the pipeline of its circuit and the app's resources."""
    axon = _axon_for(app, (await _load(store, trace_id)).circuit, trace_id)
    async with app.open_resources() as resources:
        return await axon.resume(trace_id, store=store, resources=resources, force=force)


async def fork(
    store: PersistenceStore,
    trace_id: str,
    app: App,
    *,
    at: str,
    new_id: str | None = None,
    value: JSONValue = None,
) -> RunResult:
    """Fork `trace_id` at step `at` into a new trace and run it (see `Axon.fork`)."""
    axon = _axon_for(app, (await _load(store, trace_id)).circuit, trace_id)
    async with app.open_resources() as resources:
        return await axon.fork(
            trace_id, store=store, at=at, trace_id=new_id, value=value, resources=resources
        )


async def recover(
    store: PersistenceStore,
    app: App,
    *,
    watch: bool = False,
    concurrency: int = 8,
    batch_size: int = 100,
    poll_interval: float = 5.0,
) -> RecoveryReport:
    """`ranvier.recover`; in watch mode SIGINT/SIGTERM stop it after the running traces."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if watch:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
    try:
        async with app.open_resources() as resources:
            return await runtime_recover(
                store,
                app.pipelines,
                resources=resources,
                watch=watch,
                concurrency=concurrency,
                batch_size=batch_size,
                poll_interval=poll_interval,
                stop=stop,
            )
    finally:
        if watch:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)


def parse_payload(text: str | None) -> JSONValue:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"--payload is not JSON ({exc}); quote it, e.g. '{{\"qty\": 2}}'"
        ) from None


async def intervene(
    store: PersistenceStore,
    trace_id: str,
    node: str,
    payload: JSONValue,
    app: App | None = None,
) -> Intervention:
    """Store an intervention; with `app`, `node` must be a step of the trace's pipeline."""
    if app is not None:
        axon = _axon_for(app, (await _load(store, trace_id)).circuit, trace_id)
        axon.index_of(node)  # InvalidInput naming the steps
    intervention = Intervention(target_node=node, payload_override=payload)
    await store.save_intervention(trace_id, intervention)
    return intervention


async def clear_intervention(store: PersistenceStore, trace_id: str) -> bool:
    """Withdraw the pending intervention (False if none is pending): a withdrawal is
    stored as an intervention of its own, so the history keeps both."""
    if rules.pending_intervention(await _load(store, trace_id)) is None:
        return False
    await store.save_intervention(trace_id, Intervention(target_node=rules.CLEARED))
    return True


async def cancel(store: PersistenceStore, trace_id: str) -> bool:
    """Complete the trace as CANCELLED; False if it was cancelled already."""
    return await runtime_cancel(store, trace_id)
