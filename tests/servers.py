"""Where the test servers are, and a loud failure when one cannot be reached.

In CI a test that needs a server never skips: it fails with a message that says
which server is missing and how to start it.
"""

from __future__ import annotations

import os

import pytest

POSTGRES_URL = os.environ.get(
    "RANVIER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("RANVIER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

PG_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = (
    'redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" '
    "--appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log"
)


def server_missing(what: str, url: str, exc: BaseException, start: str) -> None:
    pytest.fail(
        f"{what} is not reachable at {url} ({type(exc).__name__}: {exc}). Start it with: {start}",
        pytrace=False,
    )
