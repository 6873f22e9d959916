"""The read-only pages over HTTP: the list, its filters and paging, a trace's timeline,
payloads, the store overview, /healthz and /metrics (SQLite; every adapter at the end)."""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import orjson
import pytest

from ranvier import open_store
from ranvier.errors import StoreUnavailable
from ranvier.stores.base import PersistenceStore
from tests.inspect.conftest import served, settings
from tests.inspect.pipelines import app
from tests.inspect.seed import IDS, WORKER, XSS, seed


def all_ids() -> list[str]:
    return sorted(getattr(IDS, f) for f in IDS.__dataclass_fields__)


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[PersistenceStore]:
    store = await open_store(f"sqlite:///{tmp_path / 'inspect.db'}")
    await seed(store)
    try:
        yield store
    finally:
        await store.close()


def ids_on(page: str) -> list[str]:
    """The trace ids the list page links to, in order."""
    return [
        html.unescape(m) for m in re.findall(r'<td class="id"><a href="[^"]+">([^<]*)</a>', page)
    ]


async def test_the_list_shows_every_trace_with_its_status_and_the_counts(
    sqlite_store: PersistenceStore,
) -> None:
    async with served(settings(), store=sqlite_store, app=app) as (client, _):
        page = (await client.get("/")).text
    assert ids_on(page) == all_ids()
    assert "running <b>1</b>" in page and "cancelled <b>1</b>" in page
    assert f'id="count-all">{len(all_ids())}<' in page and 'data-fresh="yes"' in page
    row = page[page.index(IDS.comp_failed) :]
    assert "compensation failed" in row[: row.index("</tr>")]
    row = page[page.index(IDS.poisoned) :]
    assert "poisoned" in row[: row.index("</tr>")]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=running", [IDS.running]),
        ("status=cancelled", [IDS.cancelled]),
        (
            "status=interrupted",
            sorted([IDS.interrupted, IDS.poisoned, IDS.rewound, IDS.old_version]),
        ),
        ("version=1", [IDS.old_version]),
        ("poisoned=1", [IDS.poisoned]),
        ("compensation_failed=1", [IDS.comp_failed]),
        ("circuit=orders&status=compensated", [IDS.faulted]),
        ("circuit=nope", []),
        ("older_than=1d", []),
        ("older_than=10s&status=interrupted&version=2", sorted([IDS.interrupted, IDS.poisoned])),
    ],
)
async def test_filters(sqlite_store: PersistenceStore, query: str, expected: list[str]) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        response = await client.get(f"/?{query}")
    assert response.status_code == 200
    assert ids_on(response.text) == expected


@pytest.mark.parametrize(
    "query", ["status=bogus", "older_than=soon", "limit=0", "poisoned=1&status=running"]
)
async def test_a_bad_filter_is_a_400_naming_it(sqlite_store: PersistenceStore, query: str) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        response = await client.get(f"/?{query}")
    assert response.status_code == 400
    assert 'id="error"' in response.text


@pytest.mark.parametrize("query", ["", "version=2", "compensation_failed=1"])
async def test_paging_shows_each_trace_once_in_order(
    sqlite_store: PersistenceStore, query: str
) -> None:
    seen: list[str] = []
    url: str | None = f"/?{query}&limit=2"
    async with served(settings(), store=sqlite_store) as (client, _):
        while url is not None:
            page = (await client.get(url)).text
            seen += ids_on(page)
            found = re.search(r'<a id="next" href="([^"]+)"', page)
            url = html.unescape(found.group(1)) if found else None
            assert len(seen) <= 20
    everything = all_ids()
    if query == "version=2":
        everything.remove(IDS.old_version)
    if query == "compensation_failed=1":
        everything = [IDS.comp_failed]
    assert seen == everything


async def test_search_by_trace_id_opens_it_or_says_it_is_missing(
    sqlite_store: PersistenceStore,
) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        found = await client.get("/", params={"q": IDS.rewound})
        missing = await client.get("/", params={"q": "no-such<b>trace"})
    assert found.status_code == 303
    assert parse_qs(urlsplit(found.headers["location"]).query)["id"] == [IDS.rewound]
    assert "No trace is stored under" in missing.text and "no-such&lt;b&gt;trace" in missing.text


async def test_a_timeline_shows_superseded_events_interventions_and_the_resume(
    sqlite_store: PersistenceStore,
) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        page = (await client.get("/trace", params={"id": IDS.rewound})).text
    timeline = page[page.index('id="timeline"') :]
    rows = re.findall(r'<tr class="mark-(\w+)">', timeline)
    assert rows == ["live", "superseded", "live", "intervention"]
    assert "retried" in timeline and "2 Side St" in timeline
    assert "resumed from step</dt><dd>0" in page
    assert "full payload" in timeline and "full input" in page


async def test_a_faulted_trace_shows_its_traceback_and_compensation_state(
    sqlite_store: PersistenceStore,
) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        failed = (await client.get("/trace", params={"id": IDS.comp_failed})).text
        compensated = (await client.get("/trace", params={"id": IDS.faulted})).text
    assert "Traceback (most recent call last)" in failed
    assert "RuntimeError" in failed and "the order has no address" in failed
    assert "compensation failed" in failed and "claimed, unfinished" in failed
    assert "compensation hook" in failed  # the marker the failed hook left
    assert "compensated" in compensated and f"{IDS.faulted}:orders:RuntimeError" in compensated


async def test_a_running_trace_shows_its_lease_and_refreshes_itself(
    sqlite_store: PersistenceStore,
) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        page = (await client.get("/trace", params={"id": IDS.running})).text
        live = (await client.get("/trace/live", params={"id": IDS.running})).text
        done = (await client.get("/trace", params={"id": IDS.succeeded})).text
    assert WORKER in page and "fencing token 1" in page
    assert "data-live-url=" in page and 'data-live-every="300"' in page
    assert 'data-live-state="running"' in live and "<html" not in live
    assert "data-live-url=" not in done


async def test_a_forked_trace_links_to_its_source(sqlite_store: PersistenceStore) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        page = (await client.get("/trace", params={"id": IDS.forked})).text
    origin = page[page.index('id="forked-from"') :]
    assert f">{IDS.succeeded}</a> at step 2" in origin


async def test_a_payload_is_shown_in_full_and_as_raw_json(sqlite_store: PersistenceStore) -> None:
    trace = await sqlite_store.load(IDS.xss)
    assert trace is not None
    async with served(settings(), store=sqlite_store) as (client, _):
        page = await client.get("/trace/payload", params={"id": IDS.xss, "ref": "event:2"})
        raw = await client.get(
            "/trace/payload", params={"id": IDS.xss, "ref": "event:2", "format": "json"}
        )
        missing = await client.get("/trace/payload", params={"id": IDS.xss, "ref": "event:9"})
    assert page.status_code == 200 and "shipped" in page.text
    assert raw.headers["content-type"] == "application/json"
    assert orjson.loads(raw.content) == trace.events[2].payload
    assert orjson.loads(raw.content)["note"] == XSS
    assert missing.status_code == 400


async def test_an_unknown_trace_is_a_404_page(sqlite_store: PersistenceStore) -> None:
    async with served(settings(), store=sqlite_store) as (client, _):
        response = await client.get("/trace", params={"id": "nope"})
    assert response.status_code == 404 and "no trace is stored under" in response.text


async def test_the_overview_shows_the_store_doctor_and_counts(
    sqlite_store: PersistenceStore, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'inspect.db'}"
    async with served(settings(url), store=sqlite_store) as (client, _):
        page = (await client.get("/overview")).text
    assert "connectivity" in page and "durability" in page and "clock" in page
    assert "schema_version" in page and "sqlite" in page
    assert f"{IDS.comp_failed}:orders:RuntimeError" in page  # the unfinished claim


async def test_healthz_says_ok_or_503_when_the_store_is_down(
    sqlite_store: PersistenceStore,
) -> None:
    class Down:
        adapter = "sqlite"

        async def now_ms(self) -> int:
            raise StoreUnavailable("connection refused")

    async with served(settings(), store=sqlite_store) as (client, inspector):
        ok = await client.get("/healthz")
        inspector.store = Down()  # type: ignore[assignment]
        down = await client.get("/healthz")
        inspector.store = sqlite_store
    assert ok.status_code == 200 and ok.json()["status"] == "ok"
    assert down.status_code == 503 and "connection refused" in down.json()["error"]


async def test_metrics_give_what_ranvier_metrics_serve_gives(
    sqlite_store: PersistenceStore, tmp_path: Path
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from ranvier.ops.metrics import StoreThread, TraceStatusCollector

    async with served(settings(), store=sqlite_store) as (client, _):
        response = await client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    ours = [
        line
        for line in response.text.splitlines()
        if line.startswith(("ranvier_traces", "ranvier_store_up"))
    ]
    runner = StoreThread(f"sqlite:///{tmp_path / 'inspect.db'}")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(TraceStatusCollector(runner))
    try:
        text = generate_latest(registry).decode()
    finally:
        runner.close()
    theirs = [
        line
        for line in text.splitlines()
        if line.startswith(("ranvier_traces", "ranvier_store_up"))
    ]
    assert ours == theirs
    assert 'ranvier_traces{status="running"} 1.0' in ours


async def test_every_store_lists_and_shows_a_timeline(store: PersistenceStore) -> None:
    """Every adapter of the conformance suite, through the same pages."""
    ids = await seed(store)
    async with served(settings(), store=store) as (client, _):
        listed = await client.get("/")
        rewound = await client.get("/trace", params={"id": ids.rewound})
        failed = await client.get("/trace", params={"id": ids.comp_failed})
        overview = await client.get("/overview")
    assert (
        listed.status_code == 200 and sorted(ids_on(listed.text)) == all_ids()
    )  # Redis: SCAN order
    assert re.findall(r'<tr class="mark-(\w+)">', rewound.text) == [
        "live",
        "superseded",
        "live",
        "intervention",
    ]
    assert "claimed, unfinished" in failed.text and "Traceback" in failed.text
    assert overview.status_code == 200


async def test_a_slow_count_never_holds_a_page_back(sqlite_store: PersistenceStore) -> None:
    """A large store's count takes a while: the page shows what it has and fetches the
    counts once they are done (`/counts`)."""

    class SlowCount:
        def __init__(self, store: PersistenceStore) -> None:
            self._store = store

        def __getattr__(self, name: str) -> object:
            return getattr(self._store, name)

        async def count_traces_by_status(self) -> object:
            await asyncio.sleep(0.5)
            return await self._store.count_traces_by_status()

    config = settings(counts_ttl_seconds=60, counts_wait_seconds=0.05)
    async with served(config, store=SlowCount(sqlite_store)) as (client, _):  # type: ignore[arg-type]
        started = time.perf_counter()
        first = await client.get("/")
        took = time.perf_counter() - started
        fragment = await client.get("/counts", params={"status": "running"})
        again = await client.get("/")
    assert took < 0.4
    assert ids_on(first.text) == all_ids()
    assert 'data-counts-url="/counts?status="' in first.text and "counting…" in first.text
    assert 'data-fresh="yes"' in fragment.text and "running <b>1</b>" in fragment.text
    assert "<html" not in fragment.text and 'class="status-running on"' in fragment.text
    assert 'data-fresh="yes"' in again.text and "counting" not in again.text
