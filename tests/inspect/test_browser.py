"""The inspector in headless Chromium: the list, a timeline, live refresh, the escaping,
and each action without and then with the token (one server, SQLite, for the module).

Screenshots are checked coarsely (a PNG of the window that is not blank) and kept in
$RANVIER_INSPECT_SCREENSHOTS when set (docs/img for the docs)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from ranvier import open_store
from ranvier.inspect import create_app
from ranvier.model import CompensationState, CompletionState, PersistedTrace
from ranvier.stores.base import PersistenceStore
from tests.inspect.conftest import TOKEN, LiveServer, actions_on, screenshot
from tests.inspect.pipelines import REFUND_FAILS, app
from tests.inspect.seed import IDS, WORKER, XSS, XSS_ID, event, seed

T = TypeVar("T")
STATUSES = ("running", "interrupted", "succeeded", "faulted", "compensated", "cancelled")
KEY = f"{IDS.comp_failed}:orders:RuntimeError"


class Site:
    """The module's server and a way to read its store from the test's thread."""

    def __init__(self, server: LiveServer, url: str) -> None:
        self.server, self.store_url = server, url

    def at(self, path: str) -> str:
        return self.server.url + path

    def with_store(self, work: Callable[[PersistenceStore], Coroutine[Any, Any, T]]) -> T:
        async def body() -> T:
            store = await open_store(self.store_url)
            try:
                return await work(store)
            finally:
                await store.close()

        return asyncio.run(body())

    def load(self, trace_id: str) -> PersistedTrace:
        async def work(store: PersistenceStore) -> PersistedTrace:
            trace = await store.load(trace_id)
            assert trace is not None
            return trace

        return self.with_store(work)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    url = f"sqlite:///{tmp_path_factory.mktemp('inspect') / 'browser.db'}"
    with LiveServer(create_app(actions_on(url), app=app)) as server:
        made = Site(server, url)
        made.with_store(seed)
        yield made


def text(driver: Any) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def open_page(driver: Any, site: Site, path: str) -> None:
    driver.get(site.at(path))
    WebDriverWait(driver, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def test_the_list_shows_the_traces_and_their_statuses(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    browser.delete_all_cookies()
    open_page(browser, site, "/")
    assert browser.title == "Traces · ranvier inspector"
    body = text(browser)
    for trace_id in (IDS.succeeded, IDS.running, IDS.comp_failed, IDS.poisoned, XSS_ID):
        assert trace_id in body
    for status in STATUSES:
        assert f"{status} " in body
    assert "compensation failed" in body and "poisoned" in body
    screenshot(browser, "inspector-list", tmp_path)
    Select(browser.find_element(By.NAME, "status")).select_by_value("interrupted")
    browser.find_element(By.CSS_SELECTOR, "#filters button").click()
    WebDriverWait(browser, 10).until(lambda d: "status=interrupted" in d.current_url)
    filtered = text(browser)
    assert IDS.poisoned in filtered and IDS.succeeded not in filtered


def test_a_timeline_shows_the_fault_and_compensation(
    browser: Any, site: Site, tmp_path: Path
) -> None:
    open_page(browser, site, "/")
    browser.find_element(By.NAME, "q").send_keys(IDS.comp_failed)
    browser.find_element(By.CSS_SELECTOR, "#search button").click()
    WebDriverWait(browser, 10).until(lambda d: "/trace?" in d.current_url)
    body = text(browser)
    assert browser.find_element(By.ID, "trace-id").text == IDS.comp_failed
    assert "faulted" in body and "compensation failed" in body and "claimed, unfinished" in body
    assert "Traceback (most recent call last)" in body and "the order has no address" in body
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [
        "validate",
        "charge",
        "ship",
        "-",
    ]
    screenshot(browser, "inspector-trace", tmp_path)
    rows[0].find_element(By.LINK_TEXT, "full payload").click()
    WebDriverWait(browser, 10).until(lambda d: "/trace/payload" in d.current_url)
    assert '"valid": true' in browser.find_element(By.ID, "payload").text


def test_markup_in_a_payload_shows_as_text_and_never_runs(browser: Any, site: Site) -> None:
    """Fails if autoescape is turned off in ranvier.inspect.render."""
    for path in ("/", f"/trace?id={XSS_ID.replace('<', '%3C').replace('>', '%3E')}"):
        open_page(browser, site, path)
        assert browser.execute_script("return window.__pwned === undefined")
        assert XSS_ID in text(browser)
    assert XSS in text(browser)  # the payload preview, as typed
    open_page(
        browser,
        site,
        "/trace/payload?id=" + XSS_ID.replace("<", "%3C").replace(">", "%3E") + "&ref=input",
    )
    assert XSS in browser.find_element(By.ID, "payload").text
    assert browser.execute_script("return window.__pwned === undefined")


def test_a_running_trace_refreshes_until_it_ends(browser: Any, site: Site) -> None:
    open_page(browser, site, f"/trace?id={IDS.running}")
    assert WORKER in browser.find_element(By.ID, "lease").text

    async def charge(store: PersistenceStore) -> None:
        await store.append(event(IDS.running, 1, "charge", {"qty": 2, "payment": "live"}))

    site.with_store(charge)
    # read in one script: the region is replaced under the driver's feet on every refresh
    timeline = "return document.getElementById('timeline').textContent"
    WebDriverWait(browser, 10).until(lambda d: "live" in d.execute_script(timeline))

    async def finish(store: PersistenceStore) -> None:
        await store.complete(IDS.running, CompletionState.SUCCESS)

    site.with_store(finish)
    done = "return document.getElementById('live').dataset.liveDone"
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(done) == "1")
    assert browser.find_element(By.ID, "status").text == "succeeded"


# --- actions ---------------------------------------------------------------------------


def fill_and_submit(browser: Any, site: Site, name: str) -> None:
    """Open the trace an action is tried on, fill its form and submit it."""
    trace_id = ACTION_TRACES[name]
    open_page(browser, site, f"/trace?id={trace_id}")
    if name == "intervene":
        Select(browser.find_element(By.ID, "intervene-node")).select_by_value("ship")
        browser.find_element(By.ID, "intervene-payload").send_keys(
            '{"qty": 4, "address": "3 Elm St"}'
        )
        browser.find_element(By.ID, "intervene").click()
    elif name == "fork":
        Select(browser.find_element(By.ID, "fork-at")).select_by_value("ship")
        browser.find_element(By.ID, "fork-id").send_keys("order-ok-fork-2")
        browser.find_element(By.ID, "fork").click()
    elif name in ("release", "retry"):
        browser.find_element(By.CSS_SELECTOR, f"button.{name}").click()
    else:
        browser.find_element(By.ID, name).click()
    WebDriverWait(browser, 10).until(
        lambda d: "/actions/" in d.current_url or "/trace?" in d.current_url
    )
    WebDriverWait(browser, 10).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


ACTION_TRACES = {
    "resume": IDS.interrupted,
    "intervene": IDS.rewound,
    "cancel": IDS.old_version,
    "fork": IDS.succeeded,
    "retry": IDS.comp_failed,
    "release": IDS.comp_failed,
}


def state(site: Site) -> dict[str, Any]:
    """What the actions change, read from the store."""

    async def work(store: PersistenceStore) -> dict[str, Any]:
        traces = {name: await store.load(trace_id) for name, trace_id in ACTION_TRACES.items()}
        return {
            "resume": traces["resume"].completion,  # type: ignore[union-attr]
            "intervene": len(traces["intervene"].interventions),  # type: ignore[union-attr]
            "cancel": traces["cancel"].completion,  # type: ignore[union-attr]
            "fork": await store.load("order-ok-fork-2") is not None,
            "claim": await store.compensations.get(KEY),
            "retry": traces["retry"].completion,  # type: ignore[union-attr]
        }

    return site.with_store(work)


@pytest.mark.parametrize("name", list(ACTION_TRACES))
def test_each_action_without_the_token_is_refused(browser: Any, site: Site, name: str) -> None:
    browser.delete_all_cookies()
    before = state(site)
    fill_and_submit(browser, site, name)
    assert "/actions/" in browser.current_url
    assert "Error 401" in text(browser) and "bearer token" in text(browser)
    assert state(site) == before


def test_json_is_checked_as_it_is_typed(browser: Any, site: Site) -> None:
    open_page(browser, site, f"/trace?id={IDS.rewound}")
    field = browser.find_element(By.ID, "intervene-payload")
    field.send_keys("{qty: 4")
    assert browser.execute_script("return arguments[0].validity.valid", field) is False
    browser.find_element(By.ID, "intervene").click()
    assert "/trace?" in browser.current_url  # the browser refused to submit it


def test_each_action_with_the_token_takes_effect(browser: Any, site: Site, tmp_path: Path) -> None:
    browser.delete_all_cookies()
    open_page(browser, site, f"/trace?id={IDS.rewound}")
    browser.find_element(By.ID, "login-needed").find_element(By.LINK_TEXT, "log in").click()
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.ID, "login").click()
    WebDriverWait(browser, 10).until(lambda d: "/trace?" in d.current_url)
    assert browser.find_elements(By.ID, "logout") and not browser.find_elements(
        By.ID, "login-needed"
    )
    screenshot(browser, "inspector-actions", tmp_path)

    REFUND_FAILS.discard(IDS.comp_failed)
    for name in ("intervene", "cancel", "fork", "release", "retry", "resume"):
        fill_and_submit(browser, site, name)
        assert "Error" not in browser.title, (name, text(browser))
        assert "/trace?" in browser.current_url
    WebDriverWait(browser, 10, 0.1).until(
        lambda _: state(site)["resume"] is CompletionState.SUCCESS
    )
    WebDriverWait(browser, 10, 0.1).until(
        lambda _: state(site)["retry"] is CompletionState.COMPENSATED
    )
    after = state(site)
    assert (
        after["intervene"] == 2 and after["cancel"] is CompletionState.CANCELLED and after["fork"]
    )
    assert after["claim"] is not None and after["claim"].state is CompensationState.COMPENSATED
    open_page(browser, site, f"/trace?id={IDS.comp_failed}")
    actions = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#timeline tr.mark-action")]
    assert any("release claim" in a for a in actions) and any(
        "retry compensation" in a for a in actions
    )


def test_the_store_overview(browser: Any, site: Site, tmp_path: Path) -> None:
    open_page(browser, site, "/overview")
    body = text(browser)
    assert "connectivity" in body and "durability" in body and "schema_version" in body
    screenshot(browser, "inspector-store", tmp_path)
