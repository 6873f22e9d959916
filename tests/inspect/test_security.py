"""Safe by default: loopback only, escaping, the token, CSRF, and a read-only mode that
cannot write. The escaping and token tests fail when their safeguard is taken out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from ranvier import open_store
from ranvier.errors import InvalidInput
from ranvier.inspect import InspectorSettings
from ranvier.inspect.security import CSRF_COOKIE, SESSION_COOKIE, Guard
from ranvier.model import CompletionState
from ranvier.stores.base import PersistenceStore
from tests.inspect.conftest import TOKEN, actions_on, csrf_of, form_token, served, settings
from tests.inspect.pipelines import app
from tests.inspect.seed import IDS, XSS, XSS_ID, seed


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PersistenceStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'inspect.db'}")
    await seed(opened)
    try:
        yield opened
    finally:
        await opened.close()


# --- defaults ----------------------------------------------------------------------------


def test_the_inspector_binds_to_loopback_and_is_read_only_by_default() -> None:
    defaults = InspectorSettings(store_url="memory://")
    assert defaults.host == "127.0.0.1" and defaults.is_loopback
    assert defaults.allow_actions is False
    assert "*" not in defaults.trusted_hosts


@pytest.mark.parametrize("token", [None, "", "short-token"])
def test_actions_need_a_long_enough_token(token: str | None) -> None:
    with pytest.raises(InvalidInput, match="RANVIER_INSPECT_TOKEN"):
        InspectorSettings(store_url="memory://", allow_actions=True, token=token).check()


async def test_a_foreign_host_header_is_refused(store: PersistenceStore) -> None:
    """DNS rebinding: a page of another site must not read the inspector through its name."""
    async with served(settings(), store=store) as (client, _):
        foreign = await client.get("/", headers={"host": "evil.example"})
        local = await client.get("/", headers={"host": "localhost:8080"})
    assert foreign.status_code == 400
    assert local.status_code == 200


async def test_every_page_forbids_scripts_of_its_own_and_framing(store: PersistenceStore) -> None:
    async with served(settings(), store=store) as (client, _):
        response = await client.get("/trace", params={"id": IDS.xss})
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"


# --- escaping --------------------------------------------------------------------------


async def test_markup_in_payloads_and_ids_is_shown_as_text(store: PersistenceStore) -> None:
    """Fails if autoescape is turned off in ranvier.inspect.render."""
    async with served(settings(), store=store) as (client, _):
        pages = [
            (await client.get("/")).text,
            (await client.get("/trace", params={"id": XSS_ID})).text,
            (await client.get("/trace/live", params={"id": XSS_ID})).text,
            (await client.get("/trace/payload", params={"id": XSS_ID, "ref": "input"})).text,
            (await client.get("/", params={"q": XSS})).text,
        ]
    for page in pages:
        assert "<script>window.__pwned" not in page
        assert "&lt;script&gt;window.__pwned=" in page
    assert len(re.findall(r"<script", pages[1])) == 1  # only the page's own inspector.js


# --- the token -------------------------------------------------------------------------


async def _cancel(client: Any, **headers: str) -> Any:
    csrf = await form_token(client, f"/trace?id={IDS.interrupted}")
    return await client.post(
        "/actions/cancel", data={"csrf": csrf, "trace_id": IDS.interrupted}, headers=headers
    )


async def _still_open(store: PersistenceStore) -> bool:
    trace = await store.load(IDS.interrupted)
    return trace is not None and trace.completion is None


async def test_an_action_without_the_token_is_refused_and_changes_nothing(
    store: PersistenceStore,
) -> None:
    """Fails if the token check in ranvier.inspect.web.action is taken out."""
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        response = await _cancel(client)
        entries = [e for e in inspector.actions if e.trace_id == IDS.interrupted]
    assert response.status_code == 401
    assert "bearer token" in response.text
    assert await _still_open(store)
    assert [(e.action, e.outcome) for e in entries] == [("cancel", "refused")]


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": "Bearer wrong-token-0123456789"},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": f"Basic {TOKEN}"},
        {"cookie": f"{SESSION_COOKIE}=0123456789abcdef"},
    ],
    ids=["wrong", "longer", "not-bearer", "forged-session"],
)
async def test_a_wrong_token_is_refused(store: PersistenceStore, headers: dict[str, str]) -> None:
    async with served(actions_on(), store=store, app=app) as (client, _):
        if "cookie" in headers:
            client.cookies.set(SESSION_COOKIE, headers.pop("cookie").split("=", 1)[1])
        response = await _cancel(client, **headers)
    assert response.status_code == 401
    assert await _still_open(store)


async def test_the_bearer_token_unlocks_an_action(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, _):
        response = await _cancel(client, authorization=f"Bearer {TOKEN}")
    assert response.status_code == 303
    trace = await store.load(IDS.interrupted)
    assert trace is not None and trace.completion is CompletionState.CANCELLED


async def test_logging_in_with_the_token_gives_a_session_for_actions(
    store: PersistenceStore,
) -> None:
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        csrf = await form_token(client, "/login")
        wrong = await client.post("/login", data={"csrf": csrf, "token": "nope", "next": "/"})
        right = await client.post(
            "/login", data={"csrf": csrf, "token": TOKEN, "next": f"/trace?id={IDS.interrupted}"}
        )
        cancelled = await _cancel(client)
        outcomes = [(e.action, e.outcome) for e in inspector.actions]
    assert wrong.status_code == 401 and "not the inspector" in wrong.text
    assert right.status_code == 303 and right.headers["location"] == f"/trace?id={IDS.interrupted}"
    cookie = right.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert TOKEN not in cookie
    assert cancelled.status_code == 303 and not await _still_open(store)
    assert outcomes == [("login", "refused"), ("login", "ok"), ("cancel", "ok")]


async def test_login_never_redirects_off_site(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store) as (client, _):
        csrf = await form_token(client, "/login")
        response = await client.post(
            "/login", data={"csrf": csrf, "token": TOKEN, "next": "//evil.example/x"}
        )
    assert response.headers["location"] == "/"


def test_tokens_are_compared_by_digest_whatever_their_length() -> None:
    guard = Guard(TOKEN)
    assert guard.token_matches(TOKEN)
    assert not guard.token_matches(TOKEN[:-1]) and not guard.token_matches(TOKEN + "0")
    assert not guard.token_matches("") and not guard.token_matches(None)
    assert not Guard(None).token_matches(TOKEN)


# --- CSRF ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["missing", "other-browser", "cross-origin"])
async def test_an_action_without_a_valid_csrf_token_is_refused(
    store: PersistenceStore, case: str
) -> None:
    bearer = {"authorization": f"Bearer {TOKEN}"}
    async with served(actions_on(), store=store, app=app) as (client, _):
        csrf = await form_token(client, f"/trace?id={IDS.interrupted}")
        data = {"trace_id": IDS.interrupted, "csrf": csrf}
        headers = dict(bearer)
        if case == "missing":
            del data["csrf"]
        elif case == "other-browser":
            data["csrf"] = Guard(TOKEN).csrf_token("another-browser-cookie-value")
        else:
            headers["origin"] = "http://evil.example"
        response = await client.post("/actions/cancel", data=data, headers=headers)
    assert response.status_code == 403 and "CSRF" in response.text
    assert await _still_open(store)


async def test_the_csrf_field_is_tied_to_the_browser_cookie(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store) as (client, _):
        first = await client.get(f"/trace?id={IDS.interrupted}")
        again = await client.get(f"/trace?id={IDS.rewound}")
    assert "set-cookie" in first.headers and "set-cookie" not in again.headers
    assert csrf_of(first.text) == csrf_of(again.text)


# --- read-only -------------------------------------------------------------------------

WRITES = {
    "ensure_schema", "append", "resume", "complete", "save_intervention", "purge_completed",
    "delete", "import_trace", "acquire_lease", "renew_lease", "release_lease",
    "raise_lease_token", "drop_schema",
}  # fmt: skip
LEDGER_WRITES = {"claim", "mark_compensated", "release", "purge_older_than_ms", "import_record"}


class NoWrites:
    """A store whose every write raises (and is remembered)."""

    def __init__(self, store: Any, writes: set[str], attempted: list[str]) -> None:
        self._store, self._writes, self._attempted = store, writes, attempted

    def __getattr__(self, name: str) -> Any:
        if name in self._writes:

            async def refuse(*args: Any, **kwargs: Any) -> Any:
                self._attempted.append(name)
                raise AssertionError(f"the read-only inspector called {name}")

            return refuse
        return getattr(self._store, name)

    @property
    def compensations(self) -> Any:
        return NoWrites(self._store.compensations, LEDGER_WRITES, self._attempted)


async def test_read_only_mode_writes_nothing(store: PersistenceStore) -> None:
    attempted: list[str] = []
    guarded: Any = NoWrites(store, WRITES, attempted)
    paths = [
        "/", "/?status=faulted", "/?compensation_failed=1", "/?poisoned=1", "/?version=1",
        f"/?q={IDS.running}", "/overview", "/healthz", "/metrics", "/login",
        *(f"/trace?id={getattr(IDS, f)}" for f in IDS.__dataclass_fields__),
        f"/trace/live?id={IDS.running}", f"/trace/payload?id={IDS.rewound}&ref=superseded:0",
    ]  # fmt: skip
    async with served(settings(), store=guarded, app=app) as (client, inspector):
        statuses = [(p, (await client.get(p)).status_code) for p in paths]
        csrf = inspector.guard.csrf_token(client.cookies[CSRF_COOKIE])  # no forms to read it from
        posts = [
            (await client.post(
                f"/actions/{name}",
                data={"csrf": csrf, "trace_id": IDS.comp_failed, "node": "ship", "payload": "{}",
                      "at": "ship", "key": f"{IDS.comp_failed}:orders:RuntimeError"},
                headers={"authorization": f"Bearer {TOKEN}"},
            )).status_code
            for name in ("resume", "intervene", "cancel", "fork", "release", "compensate")
        ]  # fmt: skip
        login = await client.post("/login", data={"csrf": csrf, "token": TOKEN})
    assert attempted == []
    assert all(code in (200, 303) for _, code in statuses), statuses
    assert posts == [403] * 6 and login.status_code == 403
    page = await _page_of(store, settings(), f"/trace?id={IDS.interrupted}")
    assert "/actions/" not in page and "read-only" in page


async def _page_of(store: PersistenceStore, config: InspectorSettings, path: str) -> str:
    async with served(config, store=store, app=app) as (client, _):
        return (await client.get(path)).text
