"""The list and a timeline in Chromium on PostgreSQL and on Redis (SQLite is the other
browser module's): every store works through the same pages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from ranvier import open_store
from ranvier.inspect import create_app
from ranvier.stores.base import PersistenceStore
from tests.inspect.conftest import LiveServer, screenshot, settings
from tests.inspect.seed import IDS, seed


def _postgres() -> tuple[str, dict[str, Any], Any]:
    from tests.adapters.postgres import fresh_prefix
    from tests.servers import POSTGRES_URL

    prefix = fresh_prefix()

    async def drop(store: PersistenceStore) -> None:
        await store.drop_schema()  # type: ignore[attr-defined]

    return POSTGRES_URL, {"table_prefix": prefix}, drop


def _redis() -> tuple[str, dict[str, Any], Any]:
    from tests.adapters.redis import drop_prefix, new_prefix
    from tests.servers import REDIS_URL

    prefix = new_prefix()

    async def drop(store: PersistenceStore) -> None:
        await drop_prefix(REDIS_URL, prefix)

    return REDIS_URL, {"prefix": prefix}, drop


@pytest.fixture(scope="module", params=["postgres", "redis"])
def server(request: pytest.FixtureRequest) -> Iterator[LiveServer]:
    url, options, drop = (_postgres if request.param == "postgres" else _redis)()

    async def with_store(work: Any) -> None:
        store = await open_store(url, **options)
        try:
            await work(store)
        finally:
            await store.close()

    asyncio.run(with_store(seed))
    web = create_app(settings(url), opener=lambda: open_store(url, ensure_schema=False, **options))
    try:
        with LiveServer(web) as live:
            yield live
    finally:
        asyncio.run(with_store(drop))


def test_the_list_and_a_timeline(browser: Any, server: LiveServer, tmp_path: Path) -> None:
    browser.get(server.url + "/")
    body = browser.find_element(By.TAG_NAME, "body").text
    assert server.inspector.store.adapter in body
    for field in IDS.__dataclass_fields__:
        assert getattr(IDS, field) in body
    for status in ("running", "interrupted", "succeeded", "faulted", "compensated", "cancelled"):
        assert status in body
    screenshot(browser, f"list-{server.inspector.store.adapter}", tmp_path, keep=False)
    browser.find_element(By.LINK_TEXT, IDS.rewound).click()
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    assert [r.get_attribute("class") for r in rows] == [
        "mark-live",
        "mark-superseded",
        "mark-live",
        "mark-intervention",
    ]
    assert "read-only" in browser.find_element(By.ID, "mode").text
