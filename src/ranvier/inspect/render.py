"""Server-rendered pages: one Jinja environment with autoescape on for every template.

Autoescape is the escaping safeguard: payloads, ids, node names and error messages are
inserted as text, so a payload holding `<script>` shows as those characters.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from ranvier.inspect import formatting
from ranvier.inspect.security import CSRF_COOKIE, new_csrf_cookie
from ranvier.inspect.state import Inspector, status_order
from ranvier.ops.stores import mask_url


def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("ranvier.inspect", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        iso=formatting.iso,
        short=formatting.short,
        size=formatting.size,
        duration=formatting.duration,
        preview=formatting.preview,
        query=lambda params: urlencode(params),
    )
    env.globals.update(statuses=status_order())
    return env


ENV = environment()


def render(
    request: Request,
    inspector: Inspector,
    template: str,
    context: dict[str, Any],
    *,
    status_code: int = 200,
) -> HTMLResponse:
    """The template with what every page needs (CSRF field, login state, store label);
    a browser without a CSRF cookie gets one."""
    cookie = request.cookies.get(CSRF_COOKIE) or ""
    fresh = not 20 <= len(cookie) <= 100
    if fresh:
        cookie = new_csrf_cookie()
    common = {
        "csrf": inspector.guard.csrf_token(cookie),
        "read_only": inspector.read_only,
        "authorized": inspector.guard.authorized(request) if not inspector.read_only else False,
        "store_label": f"{inspector.store.adapter} · {mask_url(inspector.settings.store_url)}",
        "path": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
        "has_app": inspector.app is not None,
        "refresh_ms": int(inspector.settings.refresh_seconds * 1000),
    }
    body = ENV.get_template(template).render({**common, **context})
    response = HTMLResponse(body, status_code=status_code)
    if fresh:
        response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="strict", path="/")
    return response
