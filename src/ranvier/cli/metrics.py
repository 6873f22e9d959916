"""`ranvier metrics serve`: a Prometheus endpoint for the store."""

from __future__ import annotations

import threading
from typing import Annotated

import typer
from prometheus_client import start_http_server

from ranvier.cli._common import StoreOption, StoreOptionsOption, errors_as_exit, stderr
from ranvier.ops import metrics as ops_metrics
from ranvier.ops.stores import mask_url
from ranvier.stores.url import resolve_store_url

app = typer.Typer(help="Prometheus metrics.", no_args_is_help=True)


@app.command("serve")
def serve(
    store: StoreOption = None,
    store_option: StoreOptionsOption = None,
    port: Annotated[
        int,
        typer.Option(
            help="Port to serve /metrics on.",
            envvar="RANVIER_METRICS_PORT",
            min=0,
            max=65535,
        ),
    ] = 9464,
    address: Annotated[
        str,
        typer.Option(help="Address to bind.", envvar="RANVIER_METRICS_ADDRESS"),
    ] = "0.0.0.0",
) -> None:
    """Serve ranvier_traces{status}, ranvier_store_up and the runtime's metrics until stopped."""
    with errors_as_exit():
        runner = ops_metrics.register(store)
    try:
        with errors_as_exit():
            start_http_server(port, addr=address)
        stderr().print(
            f"serving metrics of {mask_url(resolve_store_url(store))} on http://{address}:{port}/metrics",
            highlight=False,
        )
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        runner.close()
