"""The ASGI app: routes, the access checks in front of actions, errors as pages."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ranvier import rules
from ranvier.errors import (
    InvalidInput,
    RanvierError,
    SchemaMissing,
    StoreUnavailable,
    TraceBusy,
    TraceCompleted,
    TraceNotFound,
    TracePoisoned,
)
from ranvier.inspect import pages
from ranvier.inspect.actions import perform, trace_url
from ranvier.inspect.audit import ActionLog
from ranvier.inspect.counts import StatusCounts
from ranvier.inspect.render import render
from ranvier.inspect.security import CSRF_FIELD, SESSION_COOKIE, Guard, SecurityHeaders, safe_next
from ranvier.inspect.settings import InspectorSettings
from ranvier.inspect.state import Inspector
from ranvier.inspect.trace_view import trace_view
from ranvier.ops.stores import open_with_defaults
from ranvier.runtime import App
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.inspect")
Opener = Callable[[], Awaitable[PersistenceStore]]
STATIC = Path(__file__).parent / "static"
MAX_FORM_BYTES = 4 * rules.DEFAULT_MAX_PAYLOAD_BYTES
_STATUS_OF: list[tuple[type[RanvierError], int]] = [
    (TraceNotFound, 404),
    (InvalidInput, 400),
    (StoreUnavailable, 503),
    (SchemaMissing, 503),
    (TraceBusy, 409),
    (TraceCompleted, 409),
    (TracePoisoned, 409),
]


def status_of(exc: RanvierError) -> int:
    return next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 500)


def client_of(request: Request) -> str:
    return request.client.host if request.client else "-"


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form body (first value of each field), at most MAX_FORM_BYTES."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise HTTPException(413, "form too large")
    try:
        fields = parse_qs(body.decode(), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"the form could not be read: {exc}") from None
    return {k: v[0] for k, v in fields.items()}


def _refuse(
    request: Request, inspector: Inspector, code: int, message: str, trace_id: str, name: str
) -> Response:
    inspector.actions.record(trace_id, name, message, "refused", client_of(request))
    context = {"message": message, "code": code, "login": code == 401}
    return render(request, inspector, "error.html", context, status_code=code)


async def action(request: Request) -> Response:
    """POST /actions/{name}: only with --allow-actions, a CSRF token and the bearer token."""
    inspector = pages.inspector_of(request)
    name = request.path_params["name"]
    if inspector.read_only:
        message = "actions are off: this inspector was started without --allow-actions"
        return _refuse(request, inspector, 403, message, "-", name)
    form = await read_form(request)
    trace_id = form.get("trace_id", "-")
    if not inspector.guard.csrf_ok(request, form.get(CSRF_FIELD)):
        message = "the form's CSRF token is missing or stale: reload the page and try again"
        return _refuse(request, inspector, 403, message, trace_id, name)
    if not inspector.guard.authorized(request):
        message = "actions need the bearer token (RANVIER_INSPECT_TOKEN): log in first"
        return _refuse(request, inspector, 401, message, trace_id, name)
    try:
        done = await perform(inspector, name, form, client_of(request))
    except RanvierError as exc:
        return await _action_failed(request, inspector, exc, trace_id, form)
    return RedirectResponse(trace_url(done.trace_id), status_code=303)


async def _action_failed(
    request: Request, inspector: Inspector, exc: RanvierError, trace_id: str, form: dict[str, str]
) -> Response:
    """The trace's page again, with the error and what was typed."""
    try:
        view = await trace_view(inspector, trace_id)
    except RanvierError:
        return error_page(request, exc)
    context = {"view": view, "error": str(exc), "form": form}
    return render(request, inspector, "trace.html", context, status_code=status_of(exc))


async def login_page(request: Request) -> Response:
    inspector = pages.inspector_of(request)
    context = {"next": safe_next(request.query_params.get("next")), "message": None}
    return render(request, inspector, "login.html", context)


async def login(request: Request) -> Response:
    """Present the token once; the browser keeps an HttpOnly, SameSite=Strict session."""
    inspector = pages.inspector_of(request)
    form = await read_form(request)
    target = safe_next(form.get("next"))
    if inspector.read_only or not inspector.guard.has_token:
        return _refuse(
            request, inspector, 403, "actions are off: nothing to log in to", "-", "login"
        )
    if not inspector.guard.csrf_ok(request, form.get(CSRF_FIELD)):
        return _refuse(request, inspector, 403, "stale login form: reload it", "-", "login")
    if not inspector.guard.token_matches(form.get("token")):
        inspector.actions.record("-", "login", "wrong token", "refused", client_of(request))
        context = {"next": target, "message": "that is not the inspector's token"}
        return render(request, inspector, "login.html", context, status_code=401)
    inspector.actions.record("-", "login", "", "ok", client_of(request))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE, inspector.guard.session_value(), httponly=True, samesite="strict", path="/"
    )
    return response


async def logout(request: Request) -> Response:
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


def error_page(request: Request, exc: Exception) -> Response:
    inspector = pages.inspector_of(request)
    if isinstance(exc, RanvierError):
        code, message = status_of(exc), str(exc)
    elif isinstance(exc, HTTPException):
        code, message = exc.status_code, str(exc.detail)
    else:
        code, message = 500, f"unexpected {type(exc).__name__}: {exc}"
        log.error("inspector page %s failed", request.url.path, exc_info=exc)
    context = {"message": message, "code": code, "login": False}
    return render(request, inspector, "error.html", context, status_code=code)


async def _on_error(request: Request, exc: Exception) -> Response:
    return error_page(request, exc)


def create_app(
    settings: InspectorSettings,
    *,
    store: PersistenceStore | None = None,
    opener: Opener | None = None,
    app: App | None = None,
) -> Starlette:
    """The inspector as an ASGI app.

    The store is `store` if given (it stays the caller's to close), else the one
    `opener` returns at startup, else the one `settings.store_url` names; those two are
    closed at shutdown. Opened by URL, the schema is created only when actions are
    allowed: a read-only inspector writes nothing.
    """
    settings.check()

    async def open_own() -> PersistenceStore:
        if opener is not None:
            return await opener()
        return await open_with_defaults(settings.store_url, ensure_schema=settings.allow_actions)

    @asynccontextmanager
    async def lifespan(web: Starlette) -> AsyncIterator[None]:
        opened = store or await open_own()
        counts = StatusCounts(
            opened, ttl_s=settings.counts_ttl_seconds, wait_s=settings.counts_wait_seconds
        )
        inspector = Inspector(
            settings=settings,
            store=opened,
            app=app,
            guard=Guard(settings.token if settings.allow_actions else None),
            actions=ActionLog(settings.audit_log),
            counts=counts,
        )
        web.state.inspector = inspector
        try:
            yield
        finally:
            await inspector.drain()
            await counts.close()
            if store is None:
                await opened.close()

    routes = [
        Route("/", pages.traces),
        Route("/trace", pages.trace),
        Route("/trace/live", pages.trace_live),
        Route("/trace/payload", pages.payload),
        Route("/counts", pages.counts),
        Route("/overview", pages.store_overview),
        Route("/healthz", pages.healthz),
        Route("/metrics", pages.metrics),
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/actions/{name}", action, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=settings.trusted_hosts),
    ]
    handlers = {RanvierError: _on_error, HTTPException: _on_error, Exception: _on_error}
    return Starlette(
        routes=routes, middleware=middleware, exception_handlers=handlers, lifespan=lifespan
    )
