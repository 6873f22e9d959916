"""`ranvier inspect`: serve the web inspector (the `ranvier[inspect]` extra)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ranvier.cli._common import (
    EXIT_BAD_INPUT,
    StoreOption,
    StoreOptionsOption,
    errors_as_exit,
    fail,
    run,
    stderr,
)
from ranvier.ops.control import load_app
from ranvier.ops.stores import mask_url, opened
from ranvier.stores.url import resolve_store_url


async def _reachable(url: str, *, writable: bool) -> None:
    """Fail before serving when the store cannot be reached or, read-only, holds no
    ranvier schema (a mistyped path or prefix); with actions, the schema is created."""
    async with opened(url, ensure_schema=writable, read_only=not writable):
        pass


def inspect(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to bind; keep 127.0.0.1 unless a proxy with TLS and "
            "authentication stands in front.",
            envvar="RANVIER_INSPECT_HOST",
        ),
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(help="Port to serve on.", envvar="RANVIER_INSPECT_PORT", min=0, max=65535),
    ] = 8080,
    app_spec: Annotated[
        str | None,
        typer.Option(
            "--app",
            envvar="RANVIER_APP",
            help="module:attribute naming a ranvier.App, an Axon or a list of Axons: lists "
            "their steps for interventions and lets actions resume, fork and compensate.",
        ),
    ] = None,
    allow_actions: Annotated[
        bool,
        typer.Option(
            "--allow-actions",
            envvar="RANVIER_INSPECT_ALLOW_ACTIONS",
            help="Offer actions (resume, intervene, cancel, fork, compensation claims), each "
            "behind the bearer token in RANVIER_INSPECT_TOKEN and a CSRF token. Off: read-only.",
        ),
    ] = False,
    max_attempts: Annotated[
        int,
        typer.Option(
            help="Starts after which an interrupted trace counts as poisoned (pipelines of "
            "--app use their own max_attempts).",
            envvar="RANVIER_MAX_ATTEMPTS",
            min=1,
        ),
    ] = 5,
    audit_log: Annotated[
        Path | None,
        typer.Option(
            help="Also append every action to this file as JSON lines (read back at start).",
            envvar="RANVIER_INSPECT_AUDIT_LOG",
            dir_okay=False,
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            envvar="RANVIER_INSPECT_ALLOWED_HOSTS",
            help="Host header accepted beyond localhost and the bound address (the name a "
            "proxy forwards); repeatable.",
        ),
    ] = None,
) -> None:
    """Serve the web inspector: traces by status, timelines, the store, /metrics, /healthz."""
    try:
        from ranvier import inspect as inspector
    except ImportError as exc:
        fail(
            f"the inspector needs its extra ({exc.name} is missing): "
            "pip install 'ranvier[inspect]'",
            EXIT_BAD_INPUT,
        )
    url = resolve_store_url(store)
    with errors_as_exit():
        settings = inspector.InspectorSettings(
            store_url=url,
            host=host,
            port=port,
            allow_actions=allow_actions,
            token=inspector.token_from_env(),
            max_attempts=max_attempts,
            audit_log=audit_log,
            allowed_hosts=tuple(allowed_host or ()),
        ).check()
        app = load_app(app_spec) if app_spec else None
    run(_reachable(url, writable=allow_actions))
    mode = "actions allowed (token required)" if allow_actions else "read-only"
    where = f"http://{host if ':' not in host else f'[{host}]'}:{port}/"
    console = stderr()
    console.print(f"inspecting {mask_url(url)} on {where} ({mode})", highlight=False)
    if not settings.is_loopback:
        console.print(
            f"warning: bound to {host}, not loopback: anyone who reaches it reads every "
            "trace; put it behind TLS and authentication",
            highlight=False,
        )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises the Ctrl+C it stopped on
        inspector.serve(settings, app)
