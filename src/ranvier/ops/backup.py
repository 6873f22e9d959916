"""Backup, restore and verify: any store to a portable file, and back into any store.

Restore reads the whole file once, checking every line and the footer and comparing
each trace with what the target store already holds, before it writes anything: a
corrupt or truncated file, or a trace that differs from a stored one, stops it with
nothing written. `import_trace` then writes (identical traces are skipped).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import TypeVar

from ranvier import rules
from ranvier.errors import RestoreConflict
from ranvier.model import PersistedTrace
from ranvier.ops.backup_format import BackupReader, BackupSummary, BackupWriter
from ranvier.ops.stores import count_traces, iter_traces
from ranvier.stores.base import PersistenceStore

Progress = Callable[[int], None]
PAGE = 1000
CONCURRENCY = 16
"""Loads/imports in flight: within the default pools (PostgreSQL 20, whose acquire
times out after 3 s; redis-py 100, which refuses calls beyond it rather than queue)."""
_T = TypeVar("_T")


def _noop(_: int) -> None:
    return None


def _chunks(items: Iterable[_T], size: int) -> Iterator[list[_T]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


async def load_many(store: PersistenceStore, ids: Sequence[str]) -> list[PersistedTrace | None]:
    """The traces in `ids` order (None for one deleted meanwhile), in one store call."""
    found = {t.trace_id: t for t in await store.load_many(list(ids))}
    return [found.get(i) for i in ids]


async def _is_empty(store: PersistenceStore) -> bool:
    return not (await store.list_traces(limit=1)).items


async def backup(
    store: PersistenceStore, path: Path, *, progress: Progress = _noop
) -> BackupSummary:
    """Write every trace of `store` to `path`, one page of traces in memory at a time.

    Not a snapshot: traces written during the backup may or may not be in it.
    """
    with BackupWriter(path, source_adapter=store.adapter) as writer:
        ids: list[str] = []
        async for summary in iter_traces(store):
            ids.append(summary.trace_id)
            if len(ids) == CONCURRENCY:
                await _write_traces(store, writer, ids, progress)
                ids = []
        await _write_traces(store, writer, ids, progress)
        # the ledger (a restore must not run a claimed hook again) and the fencing tokens
        # (a restored store must never hand out a token already used)
        async for record in _pages(store.compensations.list_records, lambda r: r.key):
            writer.write_compensation(record)
        async for token in _pages(store.list_lease_tokens, lambda t: t.trace_id):
            writer.write_lease_token(token)
        return writer.finish()


async def _pages(
    fetch: Callable[..., Awaitable[list[_T]]], key: Callable[[_T], str]
) -> AsyncIterator[_T]:
    after: str | None = None
    while True:
        page = await fetch(after=after, limit=PAGE)
        for item in page:
            yield item
        if len(page) < PAGE:
            return
        after = key(page[-1])


async def _write_traces(
    store: PersistenceStore, writer: BackupWriter, ids: list[str], progress: Progress
) -> None:
    for trace in await load_many(store, ids):
        if trace is not None:  # deleted meanwhile (a purge): not part of the backup
            writer.write(trace)
    progress(len(ids))


def check_file(path: Path, *, progress: Progress = _noop) -> BackupSummary:
    """Read the whole file, checking every line and the footer; `BackupCorrupt` if not whole."""
    reader = BackupReader(path)
    for chunk in _chunks(reader, 1000):
        progress(len(chunk))
    assert reader.summary is not None
    return reader.summary


@dataclass(slots=True, kw_only=True)
class Comparison:
    """A backup file against a live store, trace by trace."""

    file: BackupSummary | None = None
    store_traces: int = 0
    matched: int = 0
    missing: list[str] = field(default_factory=list)
    different: list[str] = field(default_factory=list)

    @property
    def extra(self) -> int:
        """Traces in the store that are not in the file."""
        return self.store_traces - self.matched - len(self.different)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.different and self.extra == 0


async def compare(store: PersistenceStore, path: Path, *, progress: Progress = _noop) -> Comparison:
    """Compare counts and per-trace digests of the file with the live store."""
    result = Comparison()
    reader = BackupReader(path)
    for chunk in _chunks(reader, CONCURRENCY):
        stored = await load_many(store, [t.trace_id for t, _ in chunk])
        for (trace, digest), current in zip(chunk, stored, strict=True):
            if current is None:
                result.missing.append(trace.trace_id)
            elif rules.trace_digest(current) != digest:
                result.different.append(trace.trace_id)
            else:
                result.matched += 1
        progress(len(chunk))
    result.file = reader.summary
    result.store_traces = await count_traces(store)
    return result


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreReport:
    file: BackupSummary
    written: int
    skipped: int
    compensations: int = 0
    """Compensation records merged into the ledger (never backwards)."""
    lease_tokens: int = 0
    """Fencing tokens raised to the backup's (never lowered)."""


def _conflict(ids: list[str], count: int, written: int = 0) -> RestoreConflict:
    shown = ", ".join(repr(i) for i in ids[:5]) + (" ..." if count > 5 else "")
    return RestoreConflict(
        f"{count} trace(s) in the backup differ from the stored ones ({shown}); "
        f"{written} written, none overwritten: delete those traces first "
        "(or restore into an empty store)"
    )


async def restore(
    store: PersistenceStore, path: Path, *, progress: Progress = _noop
) -> RestoreReport:
    """Restore every trace of the file; checks the whole file and the conflicts first.

    Into an empty store there is nothing to conflict with, so the check only reads the
    file; otherwise every trace of the file is compared with the stored one.
    """
    if await _is_empty(store):
        summary = check_file(path, progress=progress)
    else:
        checked = await compare(store, path, progress=progress)
        if checked.different:
            raise _conflict(checked.different, len(checked.different))
        assert checked.file is not None
        summary = checked.file
    written = skipped = 0
    conflicts: list[str] = []
    for chunk in _chunks(BackupReader(path), CONCURRENCY):
        outcomes = await asyncio.gather(
            *(_import(store, trace) for trace, _ in chunk), return_exceptions=False
        )
        for trace_id, outcome in outcomes:
            if outcome is None:
                conflicts.append(trace_id)
            elif outcome:
                written += 1
            else:
                skipped += 1
        progress(len(chunk))
    if conflicts:  # written by someone else between the check and the import
        raise _conflict(conflicts, len(conflicts), written)
    reader = BackupReader(path)
    for _ in reader:  # the ledger and tokens follow the traces in the file
        pass
    for record in reader.compensations:
        await store.compensations.import_record(record)
    for token in reader.lease_tokens:
        await store.raise_lease_token(token.trace_id, token.token)
    return RestoreReport(
        file=summary,
        written=written,
        skipped=skipped,
        compensations=len(reader.compensations),
        lease_tokens=len(reader.lease_tokens),
    )


async def _import(store: PersistenceStore, trace: PersistedTrace) -> tuple[str, bool | None]:
    try:
        return trace.trace_id, await store.import_trace(trace)
    except RestoreConflict:
        return trace.trace_id, None
