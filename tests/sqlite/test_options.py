"""Constructor options and URL forms of the SQLite store."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ranvier import InvalidInput, open_store
from ranvier.stores.sqlite import SqlitePersistenceStore, from_url
from tests.contract.helpers import envelope, new_trace_id


@pytest.mark.parametrize("mode", ["", "fast", "NORMAl ", 2, None])
def test_an_unknown_synchronous_mode_is_invalid(tmp_path: Path, mode: object) -> None:
    with pytest.raises(InvalidInput, match="synchronous"):
        SqlitePersistenceStore(tmp_path / "x.db", synchronous=mode)  # type: ignore[arg-type]


@pytest.mark.parametrize("mode", ["off", "normal", "FULL", "Extra"])
async def test_every_synchronous_mode_stores_and_loads(tmp_path: Path, mode: str) -> None:
    path = tmp_path / "sync.db"
    tid = new_trace_id()
    async with SqlitePersistenceStore(path, synchronous=mode) as store:
        await store.ensure_schema()
        await store.append(envelope(tid, 0))
        trace = await store.load(tid)
        assert trace is not None and len(trace.events) == 1


@pytest.mark.parametrize(
    "options",
    [{"busy_timeout_ms": 0}, {"busy_timeout_ms": -1}, {"max_payload_bytes": 0}],
)
def test_bad_numeric_options_are_invalid(tmp_path: Path, options: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput):
        SqlitePersistenceStore(tmp_path / "x.db", **options)


def test_memory_paths_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="file"):
        SqlitePersistenceStore(":memory:")


async def test_a_relative_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = await open_store("sqlite:///relative.db")
    await store.close()
    assert (tmp_path / "relative.db").exists()


async def test_an_absolute_url_has_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "abs.db"
    store = await open_store(f"sqlite:///{path}")
    await store.close()
    assert str(path).startswith("/") and path.exists()


async def test_the_default_url_is_ranvier_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RANVIER_STORE_URL", raising=False)
    store = await open_store()
    assert store.adapter == "sqlite"
    await store.close()
    assert (tmp_path / "ranvier.db").exists()


async def test_url_query_and_keyword_options(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/q.db?synchronous=full&busy_timeout_ms=100"
    store = await from_url(url, max_payload_bytes=64)
    try:
        assert store._db.synchronous == "FULL"
        assert store._db.busy_timeout_ms == 100
        with pytest.raises(InvalidInput, match="limit is 64"):
            await store.append(envelope(new_trace_id(), 0, {"big": "x" * 100}))
    finally:
        await store.close()


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://relative.db",
        "sqlite:///",
        "sqlite:///x.db?colour=blue",
        "sqlite:///x.db?busy_timeout_ms=soon",
        "sqlite:///x.db?synchronous=sometimes",
    ],
)
async def test_bad_urls_are_invalid(url: str) -> None:
    with pytest.raises(InvalidInput):
        await from_url(url)


async def test_an_unopenable_file_is_store_unavailable(tmp_path: Path) -> None:
    from ranvier import StoreUnavailable

    store = SqlitePersistenceStore(tmp_path / "missing-dir" / "x.db")
    with pytest.raises(StoreUnavailable, match=r"x\.db"):
        await store.ensure_schema()
    await store.close()


async def test_payloads_are_json_text_that_sql_can_read(tmp_path: Path) -> None:
    path = tmp_path / "json.db"
    tid = new_trace_id()
    async with SqlitePersistenceStore(path) as store:
        await store.ensure_schema()
        await store.append(envelope(tid, 0, {"order": {"id": "abc"}}))
    with closing(sqlite3.connect(path)) as conn:
        row = conn.execute(
            "SELECT json_extract(payload, '$.order.id') FROM ranvier_persistence_events"
        ).fetchone()
    assert row == ("abc",)
