"""Serving the inspector with uvicorn."""

from __future__ import annotations

import uvicorn

from ranvier.inspect.settings import InspectorSettings
from ranvier.inspect.web import create_app
from ranvier.runtime import App


def config(settings: InspectorSettings, app: App | None = None) -> uvicorn.Config:
    """uvicorn's configuration: no proxy headers trusted, no server banner."""
    return uvicorn.Config(
        create_app(settings, app=app),
        host=settings.host,
        port=settings.port,
        proxy_headers=False,
        server_header=False,
        log_level="info",
        access_log=False,
        lifespan="on",
    )


def serve(settings: InspectorSettings, app: App | None = None) -> None:
    """Serve until interrupted (SIGINT/SIGTERM end it cleanly)."""
    uvicorn.Server(config(settings, app)).run()
