"""Redis servers the tests start themselves: on free ports, in temp dirs, stopped by pid.

`shared_cluster()` starts one 3-master Redis Cluster per test session (lazily, on first
use) and stops it when the interpreter exits; `RedisServer.start` gives a single server
(e.g. with AOF) that a test owns, restarts and stops.
"""

from __future__ import annotations

import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "redis-server"
REDIS_CLI = shutil.which("redis-cli") or "redis-cli"


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(*, with_bus: bool = False) -> int:
    """A free port (and its cluster bus port, +10000, when `with_bus`)."""
    for _ in range(200):
        port = random.randint(20000, 29999)
        if _port_free(port) and (not with_bus or _port_free(port + 10000)):
            return port
    raise RuntimeError("no free port found for a test redis-server")


def cli(port: int, *args: str) -> str:
    done = subprocess.run(
        [REDIS_CLI, "-p", str(port), *args], capture_output=True, text=True, timeout=30
    )
    return done.stdout


@dataclass
class RedisServer:
    port: int
    directory: Path
    extra: tuple[str, ...]
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @classmethod
    def start(cls, directory: Path, *extra: str, cluster: bool = False) -> RedisServer:
        server = cls(free_port(with_bus=cluster), directory, extra)
        server.launch()
        return server

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def launch(self, *, until: str = "PONG") -> None:
        """Start (again, on the same dir) and wait until PING answers `until` ('' = any
        answer, e.g. LOADING while the dataset is read back)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1"]
        args += ["--dir", str(self.directory), "--save", "", "--daemonize", "no"]
        args += ["--logfile", str(self.directory / "redis.log"), *self.extra]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while until not in (answer := cli(self.port, "PING").strip()) or not answer:
            if self.process.poll() is not None or time.monotonic() > deadline:
                log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop this server (only ours: by pid) and wait for it to exit."""
        if self.process is None or self.process.poll() is not None:
            return
        os.kill(self.process.pid, sig)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.launch()


@dataclass
class RedisClusterServers:
    nodes: list[RedisServer]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, masters: int = 3) -> RedisClusterServers:
    nodes: list[RedisServer] = []
    try:
        for i in range(masters):
            node_dir = directory / f"node{i}"
            extra = ("--cluster-enabled", "yes", "--cluster-node-timeout", "5000")
            extra += ("--cluster-config-file", str(node_dir / "nodes.conf"), "--appendonly", "no")
            nodes.append(RedisServer.start(node_dir, *extra, cluster=True))
        addresses = [f"127.0.0.1:{n.port}" for n in nodes]
        create = ["--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"]
        subprocess.run(
            [REDIS_CLI, *create],
            capture_output=True,
            check=True,
            timeout=60,
        )
        _wait_cluster_ok(nodes)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


def _wait_cluster_ok(nodes: list[RedisServer]) -> None:
    deadline = time.monotonic() + 30
    while not all("cluster_state:ok" in cli(n.port, "CLUSTER", "INFO") for n in nodes):
        if time.monotonic() > deadline:
            raise RuntimeError("the test redis cluster did not reach cluster_state:ok")
        time.sleep(0.1)


_shared: RedisClusterServers | None = None


def shared_cluster() -> RedisClusterServers:
    """The session's 3-master cluster, started on first use and stopped at exit."""
    global _shared
    if _shared is None:
        directory = Path(tempfile.mkdtemp(prefix="ranvier-redis-cluster-"))
        _shared = start_cluster(directory)
        atexit.register(_stop_shared, directory)
    return _shared


def _stop_shared(directory: Path) -> None:
    if _shared is not None:
        _shared.stop()
    shutil.rmtree(directory, ignore_errors=True)
