"""A store opened without `ensure_schema` creates nothing (issue 14, item 5): a missing
file, or one without the ranvier tables, is `SchemaMissing`, and `describe` says so."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from ranvier import CompletionState, SchemaMissing, TraceStatus, open_store
from ranvier.stores.base import PersistenceStore
from ranvier.stores.sqlite import SqlitePersistenceStore
from ranvier.stores.sqlite.schema import CODE_VERSION, OBJECTS
from tests.contract.helpers import envelope, new_trace_id


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def _every_use_is_schema_missing(store: PersistenceStore, url: str) -> None:
    message = f"no ranvier schema at {url} (run `ranvier schema ensure`)"
    calls = [
        store.list_traces(),
        store.load("t"),
        store.count_traces_by_status(),
        store.append(envelope("t", 0)),
        store.acquire_lease("t", "w1", 1000),
        store.compensations.claim("k"),
        store.compensations.list_records(),
    ]
    for call in calls:
        with pytest.raises(SchemaMissing) as caught:
            await call
        assert str(caught.value) == message


async def test_a_missing_file_is_schema_missing_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "prod.bd"  # a typo of prod.db
    url = f"sqlite:///{path}"
    store = await open_store(url, ensure_schema=False)
    await _every_use_is_schema_missing(store, url)
    description = await store.describe()
    assert (description.schema_version, description.latest_schema_version) == (
        None,
        CODE_VERSION,
    )
    assert description.settings["journal_mode"] is None
    await store.close()
    assert _files(tmp_path) == []  # neither the file nor its -wal/-shm


@pytest.mark.parametrize("content", ["empty", "other tables"])
async def test_a_file_without_the_schema_is_schema_missing_and_left_as_it_is(
    tmp_path: Path, content: str
) -> None:
    path = tmp_path / "other.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        if content == "other tables":
            conn.execute("CREATE TABLE mine (v INTEGER)")
    before = path.read_bytes()
    url = f"sqlite:///{path}"
    async with await open_store(url, ensure_schema=False) as store:
        await _every_use_is_schema_missing(store, url)
        description = await store.describe()
    assert description.schema_version is None
    assert description.settings["journal_mode"] == "delete"  # not switched to WAL
    assert _files(tmp_path) == ["other.db"]
    assert path.read_bytes() == before


async def test_ensure_schema_later_creates_the_file_and_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "later.db"
    store = SqlitePersistenceStore(path)
    with pytest.raises(SchemaMissing):
        await store.list_traces()  # the reader found nothing: it must connect again
    with pytest.raises(SchemaMissing):
        await store.append(envelope("t", 0))  # so must the writer
    assert not path.exists()
    await store.ensure_schema()  # what `ranvier schema ensure` does
    tid = new_trace_id()
    await store.append(envelope(tid, 0))
    await store.complete(tid, CompletionState.SUCCESS)
    assert (await store.count_traces_by_status())[TraceStatus.SUCCEEDED] == 1
    description = await store.describe()
    assert description.schema_version == CODE_VERSION
    assert description.settings["journal_mode"] == "wal"
    await store.close()


async def test_a_store_with_the_schema_opens_without_ensure_schema(tmp_path: Path) -> None:
    path = tmp_path / "ready.db"
    url = f"sqlite:///{path}"
    tid = new_trace_id()
    async with await open_store(url) as store:
        await store.append(envelope(tid, 0))
    async with await open_store(url, ensure_schema=False) as store:
        await store.append(envelope(tid, 1))
        trace = await store.load(tid)
        description = await store.describe()
    assert trace is not None and [e.step for e in trace.events] == [0, 1]
    assert description.schema_version == CODE_VERSION
    assert description.objects == OBJECTS
    assert description.location == str(path)
    assert description.settings == {
        "path": str(path),
        "journal_mode": "wal",
        "synchronous": "NORMAL",
        "busy_timeout": 5000,
    }


async def test_describe_leaves_a_closed_store_as_it_was(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'closed.db'}"
    async with await open_store(url):
        pass
    before = _files(tmp_path)
    assert before == ["closed.db"]  # the last connection removed the -wal and -shm
    async with await open_store(url, ensure_schema=False) as store:
        assert (await store.describe()).schema_version == CODE_VERSION
    assert _files(tmp_path) == before


async def test_describe_reports_the_configured_durability(tmp_path: Path) -> None:
    path = tmp_path / "full.db"
    url = f"sqlite:///{path}?synchronous=FULL&busy_timeout_ms=250"
    async with await open_store(url) as store:
        description = await store.describe()
    assert (description.settings["synchronous"], description.settings["busy_timeout"]) == (
        "FULL",
        250,
    )


async def test_a_directory_that_does_not_exist_is_still_store_unavailable_on_create(
    tmp_path: Path,
) -> None:
    from ranvier import StoreUnavailable

    store = SqlitePersistenceStore(tmp_path / "missing-dir" / "x.db")
    with pytest.raises(SchemaMissing):
        await store.list_traces()
    with pytest.raises(StoreUnavailable):
        await store.ensure_schema()
    await store.close()
    assert _files(tmp_path) == []
