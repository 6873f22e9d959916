"""Inspector test tools: an HTTP client on the ASGI app, a live uvicorn server, Chromium.

HTTP-level tests run the app in the test's own event loop (httpx's ASGI transport, the
app's lifespan entered by hand), so any adapter's store fixture works. Browser tests
start one uvicorn server per module on a free port and share one headless Chromium
(Debian's `chromium` and `chromium-driver`); a missing browser fails, never skips.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from ranvier.inspect import InspectorSettings, create_app
from ranvier.inspect.state import Inspector
from ranvier.runtime import App
from ranvier.stores.base import PersistenceStore

TOKEN = "test-token-0123456789abcdef"
BASE = "http://127.0.0.1:8080"
SCREENSHOTS_ENV = "RANVIER_INSPECT_SCREENSHOTS"
"""A directory (docs/img) to keep the browser tests' screenshots in."""


def settings(url: str = "sqlite:///unused.db", **changes: Any) -> InspectorSettings:
    values: dict[str, Any] = {
        "store_url": url,
        "refresh_seconds": 0.3,
        "counts_ttl_seconds": 0,  # every page counts, and waits for the count
        "counts_wait_seconds": 30,
    }
    values.update(changes)
    return InspectorSettings(**values)


def actions_on(url: str = "sqlite:///unused.db", **changes: Any) -> InspectorSettings:
    return settings(url, allow_actions=True, token=TOKEN, **changes)


@asynccontextmanager
async def served(
    config: InspectorSettings, *, store: PersistenceStore | None = None, app: App | None = None
) -> AsyncIterator[tuple[httpx.AsyncClient, Inspector]]:
    """A client on the inspector app, in this event loop (lifespan entered here)."""
    web: Starlette = create_app(config, store=store, app=app)
    async with web.router.lifespan_context(web):
        transport = httpx.ASGITransport(app=web)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client, web.state.inspector


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


async def form_token(client: httpx.AsyncClient, path: str = "/") -> str:
    """Load a page (getting the CSRF cookie) and return its form's CSRF field."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    return csrf_of(response.text)


# --- a live server ----------------------------------------------------------------------


class LiveServer:
    """uvicorn in a thread on a free 127.0.0.1 port, serving one inspector app."""

    def __init__(self, web: Starlette) -> None:
        self.web = web
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(web, log_level="warning", lifespan="on", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the inspector's test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        self._socket.close()

    @property
    def inspector(self) -> Inspector:
        inspector: Inspector = self.web.state.inspector
        return inspector


# --- Chromium --------------------------------------------------------------------------


def chromium_paths() -> tuple[str, str]:
    """Chromium and its driver; a clear failure (never a skip) when either is missing."""
    browser = os.environ.get("RANVIER_CHROMIUM") or next(
        filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None
    )
    driver = os.environ.get("RANVIER_CHROMEDRIVER") or shutil.which("chromedriver")
    if not browser or not driver:
        missing = " and ".join(
            n for n, p in (("chromium", browser), ("chromedriver", driver)) if not p
        )
        pytest.fail(
            f"the inspector's browser tests need headless Chromium: {missing} not found "
            "(CI=%s). Install them with: apt-get install -y chromium chromium-driver "
            "(.ci/run does), or point RANVIER_CHROMIUM / RANVIER_CHROMEDRIVER at them."
            % os.environ.get("CI", "unset"),
            pytrace=False,
        )
    return browser, driver


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium_paths()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        "--force-device-scale-factor=1",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str, tmp_dir: Path, *, keep: bool = True) -> Path:
    """Save a PNG of the page (in $RANVIER_INSPECT_SCREENSHOTS if set and `keep`) and
    check it coarsely: a PNG of the window's size that is not blank."""
    folder = Path((os.environ.get(SCREENSHOTS_ENV) if keep else None) or tmp_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    data = driver.get_screenshot_as_png()
    path.write_bytes(data)
    check_png(data)
    return path


def check_png(data: bytes) -> None:
    import zlib

    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 800 and height >= 600, (width, height)
    chunks, at = b"", 8
    while at < len(data):
        length = int.from_bytes(data[at : at + 4], "big")
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            chunks += data[at + 8 : at + 8 + length]
        at += 12 + length
    pixels = zlib.decompress(chunks)
    assert len(set(pixels[:: max(1, len(pixels) // 200_000)])) > 16, "the page looks blank"
