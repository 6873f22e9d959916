"""The inspector's safeguards: the bearer token, CSRF tokens and the response headers.

Actions need both a valid bearer token (an `Authorization: Bearer` header, or the
session cookie a browser gets by presenting the token once on /login) and a CSRF token
(a form field derived from a per-browser cookie with a per-process secret) on a
same-origin request. Tokens are compared in constant time, after hashing, so neither
their content nor their length leaks through timing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request

SESSION_COOKIE = "ranvier_inspect_session"
CSRF_COOKIE = "ranvier_inspect_csrf"
CSRF_FIELD = "csrf"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""No inline script or style at all: an escaping mistake still could not run code."""
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class Guard:
    """Checks bearer tokens, sessions and CSRF tokens for one inspector process."""

    def __init__(self, token: str | None, *, secret: bytes | None = None) -> None:
        self._token = None if token is None else _digest(token)
        self._secret = secret or secrets.token_bytes(32)

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def token_matches(self, presented: str | None) -> bool:
        """True when `presented` is the configured token (constant time)."""
        if self._token is None or not presented:
            return False
        return hmac.compare_digest(_digest(presented), self._token)

    def session_value(self) -> str:
        """The session cookie's value: proof the browser presented the token."""
        if self._token is None:
            raise RuntimeError("no token configured: sessions are impossible")
        return hmac.new(self._secret, b"session:" + self._token, hashlib.sha256).hexdigest()

    def authorized(self, request: Request) -> bool:
        """A valid bearer header, else a valid session cookie; a wrong header loses."""
        if self._token is None:
            return False
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            return self.token_matches(value.strip())
        cookie = request.cookies.get(SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie, self.session_value())

    def csrf_token(self, cookie_value: str) -> str:
        """The form field that goes with this browser's CSRF cookie."""
        return hmac.new(self._secret, b"csrf:" + cookie_value.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, request: Request, field: str | None) -> bool:
        """The field matches the browser's cookie, and the request is same-origin."""
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not field or not same_origin(request):
            return False
        return hmac.compare_digest(field, self.csrf_token(cookie))


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


def same_origin(request: Request) -> bool:
    """Origin (else Referer), when the browser sent one, names this very host."""
    host = request.headers.get("host", "")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        origin = request.headers.get("referer")
        if origin is None:
            return True  # not a browser: the CSRF token alone decides
    return urlsplit(origin).netloc == host and bool(host)


def safe_next(target: str | None) -> str:
    """A local path to go back to after login; anything else becomes "/"."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class SecurityHeaders:
    """ASGI middleware adding `SECURITY_HEADERS` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [h for h in SECURITY_HEADERS if h[0] not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
