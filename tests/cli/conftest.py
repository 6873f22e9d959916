"""CLI tests: every command through typer's runner, against real stores.

A `target` is one durable store namespace (a SQLite file, a PostgreSQL table prefix,
a Redis key prefix) reachable by URL + options, so separate CLI invocations see the
same data. Adapters are listed by which modules exist: in CI they all do, and a
missing server fails loudly (tests.servers), never skips.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from typer.testing import CliRunner, Result

from ranvier.cli import app
from ranvier.ops.stores import open_with_defaults, set_default_options
from ranvier.stores.base import PersistenceStore
from ranvier.stores.url import open_store

_T = TypeVar("_T")


def run(coro: Coroutine[Any, Any, _T]) -> _T:
    return asyncio.run(coro)


QUIET = {"RANVIER_NO_PROGRESS": "1", "COLUMNS": "200"}


@dataclass
class Target:
    """A store namespace the CLI can reach: `--store url` plus `-o key=value` options."""

    name: str
    url: str
    options: dict[str, str] = field(default_factory=dict)
    cleanup: Callable[[], Coroutine[Any, Any, None]] | None = None

    @property
    def env(self) -> dict[str, str]:
        env = {"RANVIER_STORE_URL": self.url, **QUIET}
        if self.options:
            env["RANVIER_STORE_OPTIONS"] = " ".join(f"{k}={v}" for k, v in self.options.items())
        return env

    async def open(self) -> PersistenceStore:
        return await open_store(self.url, **self.options)

    def with_store(self, work: Callable[[PersistenceStore], Coroutine[Any, Any, _T]]) -> _T:
        async def body() -> _T:
            store = await self.open()
            try:
                return await work(store)
            finally:
                await store.close()

        return run(body())


def _sqlite(tmp_path: Path, label: str) -> Target:
    """A store file with its schema, as an application that writes there leaves it."""
    target = Target("sqlite", f"sqlite:///{tmp_path / (label + '.db')}")

    async def create() -> None:
        store = await open_store(target.url)
        await store.close()

    asyncio.run(create())
    return target


def _postgres(label: str) -> Target:
    from tests.adapters.postgres import fresh_prefix, open_postgres
    from tests.servers import POSTGRES_URL

    prefix = fresh_prefix()

    async def drop() -> None:
        store = await open_postgres(prefix)
        try:
            await store.drop_schema()
        finally:
            await store.close()

    run(_check_postgres(prefix))
    return Target("postgres", POSTGRES_URL, {"table_prefix": prefix}, drop)


async def _check_postgres(prefix: str) -> None:
    from tests.adapters.postgres import open_postgres

    store = await open_postgres(prefix)  # fails loudly when the server is down
    await store.close()


def _redis(label: str) -> Target:
    from tests.servers import REDIS_URL

    prefix = f"ranvier:test:{uuid.uuid4().hex[:10]}"
    target = Target("redis", REDIS_URL, {"prefix": prefix})

    async def drop() -> None:
        store = await target.open()
        try:
            dropper = getattr(store, "drop_namespace", None) or getattr(store, "drop_all", None)
            if dropper is not None:
                await dropper()
            else:  # purge every trace the test left, by the contract
                from ranvier.ops.stores import iter_traces

                ids = [s.trace_id async for s in iter_traces(store)]
                for trace_id in ids:
                    await store.delete(trace_id)
        finally:
            await store.close()

    target.cleanup = drop
    return target


def available_adapters() -> list[str]:
    names = ["sqlite"]
    if importlib.util.find_spec("ranvier.stores.postgres") is not None:
        names.append("postgres")
    if importlib.util.find_spec("ranvier.stores.redis") is not None:
        names.append("redis")
    wanted = os.environ.get("RANVIER_TEST_ADAPTERS")
    if wanted and not os.environ.get("CI"):  # a local narrowing, as in tests/adapters
        keep = {w.strip() for w in wanted.split(",")}
        names = [n for n in names if n in keep] or ["sqlite"]
    return names


ADAPTERS = available_adapters()


def make_target(name: str, tmp_path: Path, label: str = "main") -> Target:
    if name == "sqlite":
        return _sqlite(tmp_path, label)
    made = _postgres(label) if name == "postgres" else _redis(label)

    async def create() -> None:  # the schema, as an application that writes there leaves it
        store = await made.open()
        await store.close()

    asyncio.run(create())
    return made


@pytest.fixture(params=ADAPTERS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    made = make_target(request.param, tmp_path)
    yield made
    if made.cleanup is not None:
        run(made.cleanup())


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Target:
    return _sqlite(tmp_path, "only")


@pytest.fixture(autouse=True)
def _reset_store_options() -> Iterator[None]:
    yield
    set_default_options({})


class _Result(Result):
    """click 8.1's result with stderr kept apart (`stdout`, `stderr`), and `output`
    holding both, as a terminal shows them."""

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


class Cli:
    def __init__(self) -> None:
        self.runner = CliRunner(mix_stderr=False)  # click 8.1 (pinned: see pyproject)

    def __call__(
        self, target: Target | None, *args: str, env: dict[str, str] | None = None
    ) -> Result:
        full_env = {**(target.env if target else QUIET), **(env or {})}
        result = self.runner.invoke(app, list(args), env=full_env)
        result.__class__ = _Result
        return result


@pytest.fixture
def cli() -> Cli:
    return Cli()


def assert_one_line_error(result: Result, code: int, *fragments: str) -> None:
    """A non-zero exit with one line on stderr naming the problem, never a traceback."""
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


__all__ = ["Cli", "Target", "assert_one_line_error", "open_with_defaults", "run"]
