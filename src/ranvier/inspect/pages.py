"""The read-only pages: traces, a trace, a payload, the store; /healthz and /metrics."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from ranvier import rules
from ranvier.inspect import listing
from ranvier.inspect.actions import trace_url
from ranvier.inspect.formatting import payload_bytes, payload_text
from ranvier.inspect.overview import COUNT_WAIT_S, overview
from ranvier.inspect.prometheus import CONTENT_TYPE_LATEST, metrics_text
from ranvier.inspect.render import render
from ranvier.inspect.state import Inspector
from ranvier.inspect.trace_view import payload_of, trace_view


def inspector_of(request: Request) -> Inspector:
    inspector: Inspector = request.app.state.inspector
    return inspector


async def traces(request: Request) -> Response:
    """The list: counts by status, filters, search by id, one page."""
    inspector = inspector_of(request)
    params = dict(request.query_params)
    searched = params.pop("q", "").strip()
    if searched:
        found = await listing.find_trace(inspector.store, searched)
        if found is not None:
            return RedirectResponse(trace_url(found), status_code=303)
    query = listing.ListQuery.parse(params, inspector.settings.page_size)
    counts, page = await asyncio.gather(  # the store may answer both at once (PostgreSQL)
        inspector.counts.current(),
        listing.list_page(
            inspector.store,
            query,
            max_attempts=inspector.settings.max_attempts,
            scan_budget=inspector.settings.scan_budget,
            load_budget=inspector.settings.load_budget,
        ),
    )
    context = {
        "query": query,
        "page": page,
        "counts": counts,
        "searched": searched,
        "circuits": inspector.circuits,
        "ages": listing.AGES,
    }
    return render(request, inspector, "list.html", context)


async def counts(request: Request) -> Response:
    """The counts by status as a fragment, once counted (a list page fetches it when it
    showed counts that were being counted again)."""
    inspector = inspector_of(request)
    status = request.query_params.get("status") or None
    query = listing.ListQuery(status=rules.validate_status(status))
    current = await inspector.counts.current(wait_s=COUNT_WAIT_S)
    return render(request, inspector, "_counts.html", {"counts": current, "query": query})


async def trace(request: Request) -> Response:
    inspector = inspector_of(request)
    view = await trace_view(inspector, request.query_params.get("id", ""))
    return render(request, inspector, "trace.html", {"view": view, "error": None, "form": {}})


async def trace_live(request: Request) -> Response:
    """The part of a trace's page that changes while it runs (polled by the page)."""
    inspector = inspector_of(request)
    view = await trace_view(inspector, request.query_params.get("id", ""))
    return render(request, inspector, "_live.html", {"view": view})


async def payload(request: Request) -> Response:
    """One payload in full: a page, or the JSON itself with `format=json`."""
    inspector = inspector_of(request)
    trace_id = request.query_params.get("id", "")
    view = await trace_view(inspector, trace_id)
    ref = request.query_params.get("ref", "")
    value = payload_of(view.trace, ref)
    if request.query_params.get("format") == "json":
        return Response(payload_text(value), media_type="application/json")
    context = {"view": view, "ref": ref, "text": payload_text(value), "size": payload_bytes(value)}
    return render(request, inspector, "payload.html", context)


async def store_overview(request: Request) -> Response:
    inspector = inspector_of(request)
    return render(request, inspector, "overview.html", {"info": await overview(inspector)})


async def healthz(request: Request) -> Response:
    """200 when the store answers, 503 (with the error) when it does not."""
    inspector = inspector_of(request)
    try:
        now = await inspector.store.now_ms()
    except Exception as exc:
        body = {"status": "unavailable", "store": inspector.store.adapter, "error": str(exc)}
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ok", "store": inspector.store.adapter, "store_now_ms": now})


async def metrics(request: Request) -> Response:
    data = await metrics_text(inspector_of(request))
    return Response(data, media_type=CONTENT_TYPE_LATEST)
