"""What an inspector is started with, checked before it serves anything."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

from ranvier.errors import InvalidInput

TOKEN_ENV = "RANVIER_INSPECT_TOKEN"
"""The environment variable holding the bearer token that unlocks actions."""
MIN_TOKEN_LENGTH = 16
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


@dataclass(frozen=True, slots=True, kw_only=True)
class InspectorSettings:
    """The inspector's configuration; `check()` refuses unsafe combinations."""

    store_url: str
    """The store to inspect (masked before it is shown anywhere)."""
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    allow_actions: bool = False
    """Actions (resume, intervene, cancel, fork, compensation claims) are off unless set."""
    token: str | None = None
    """The bearer token every action needs (from `RANVIER_INSPECT_TOKEN`)."""
    max_attempts: int = 5
    """Starts after which an interrupted trace counts as poisoned."""
    page_size: int = 50
    refresh_seconds: float = 2.0
    """How often the page of a running trace refreshes itself."""
    counts_ttl_seconds: float = 5.0
    """Status counts are reused this long (one counting query per interval at most)."""
    counts_wait_seconds: float = 0.1
    """How long a page waits for a count in progress before showing the last counts
    (the page then fetches the new ones): a large store's count never slows a page."""
    scan_budget: int = 5000
    """Summaries one page may read when a filter the store cannot apply is on (version)."""
    load_budget: int = 500
    """Faulted traces one page may load to find failed compensations."""
    audit_log: Path | None = None
    """Append every action as one JSON line here too (read back at start)."""
    allowed_hosts: tuple[str, ...] = field(default_factory=tuple)
    """Host headers accepted beyond the loopback names and `host` (DNS rebinding guard)."""

    def check(self) -> InspectorSettings:
        """Self, or `InvalidInput` saying what to change."""
        if self.allow_actions:
            if not self.token:
                raise InvalidInput(
                    f"--allow-actions needs a bearer token: set {TOKEN_ENV} "
                    f"(at least {MIN_TOKEN_LENGTH} characters, e.g. `openssl rand -hex 24`)"
                )
            if len(self.token) < MIN_TOKEN_LENGTH:
                raise InvalidInput(
                    f"{TOKEN_ENV} is {len(self.token)} characters long; use at least "
                    f"{MIN_TOKEN_LENGTH} (e.g. `openssl rand -hex 24`)"
                )
        if not 0 <= self.port <= 65535:
            raise InvalidInput(f"port {self.port} is not between 0 and 65535")
        if self.page_size < 1 or self.max_attempts < 1:
            raise InvalidInput("page size and max attempts must be at least 1")
        return self

    @property
    def trusted_hosts(self) -> list[str]:
        """Host header values accepted: loopback names, the bound host and the extra ones;
        "*" when bound to every interface without any named host."""
        if is_wildcard(self.host) and not self.allowed_hosts:
            return ["*"]
        names = [*LOOPBACK_NAMES, *self.allowed_hosts]
        if not is_wildcard(self.host):
            names.append(self.host)
        return list(dict.fromkeys(names))

    @property
    def is_loopback(self) -> bool:
        return is_loopback(self.host)


def is_wildcard(host: str) -> bool:
    return host in ("0.0.0.0", "::", "")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def token_from_env() -> str | None:
    """`RANVIER_INSPECT_TOKEN`, stripped; None when unset or blank."""
    value = os.environ.get(TOKEN_ENV, "").strip()
    return value or None
