"""A PostgreSQL server of the test's own, in a temp dir on a free port.

initdb refuses to run as root, so the data directory belongs to `postgres` and every
command runs through `runuser -u postgres`. The test fails loudly if it cannot start.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_postgres(*command: str, timeout: float = 60) -> None:
    prefix = [] if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--"]
    done = subprocess.run(
        [*prefix, *command], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        pytest.fail(f"{Path(command[0]).name} failed: {done.stdout}{done.stderr}", pytrace=False)


@dataclass
class OwnServer:
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def pg_ctl(self, *args: str) -> None:
        _as_postgres(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self.pg_ctl("-l", str(self.root / "log"), "-o", options, "start")

    def restart(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: no checkpoint, the restart replays the WAL."""
        self.pg_ctl("-l", str(self.root / "log"), "-m", mode, "restart")  # -l: keeps our pipes free


@contextmanager
def own_postgres() -> Iterator[OwnServer]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 server binaries are missing in {PG_BIN}", pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="ranvier-pg-"))
    shutil.chown(root, "postgres", "postgres")
    server = OwnServer(root, _free_port())
    _as_postgres(
        str(PG_BIN / "initdb"),
        "-D",
        str(server.data),
        "-U",
        "postgres",
        "--auth=trust",
        "--no-sync",
    )
    server.start()
    try:
        yield server
    finally:
        try:
            server.pg_ctl("-m", "fast", "stop")
        finally:
            shutil.rmtree(root, ignore_errors=True)
