"""The web inspector: see and steer the traces of a store from a browser.

`ranvier inspect --store URL` serves it (the `ranvier[inspect]` extra brings Starlette,
uvicorn and Jinja2). Pages are rendered on the server; a few lines of plain JavaScript
refresh a running trace and check JSON as it is typed. Read-only unless started with
`--allow-actions`, and then every action needs the bearer token from
`RANVIER_INSPECT_TOKEN` and a CSRF token. docs/inspector.md shows it.
"""

from __future__ import annotations

from ranvier.inspect.server import config, serve
from ranvier.inspect.settings import TOKEN_ENV, InspectorSettings, token_from_env
from ranvier.inspect.web import create_app

__all__ = ["TOKEN_ENV", "InspectorSettings", "config", "create_app", "serve", "token_from_env"]
