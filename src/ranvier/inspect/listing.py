"""The list page: filters, one page of traces, and the notes the status does not say.

Status, circuit, age and poisoned are filters the store applies (`list_traces`), so a
page costs one indexed query whatever the store's size. The schematic version and a
failed compensation are not: the page reads the store's pages until it is full or a
budget is spent, and then offers to continue from where it stopped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from ranvier import rules
from ranvier.errors import InvalidInput
from ranvier.model import TracePage, TraceStatus, TraceSummary
from ranvier.ops.durations import parse_duration
from ranvier.ops.timeline import compensation_failed
from ranvier.stores.base import PersistenceStore

MAX_LIMIT = 500
SCAN_BATCH = 200
"""Summaries read at once while a filter the store cannot apply is on."""
AGES = ("5m", "1h", "1d", "7d", "30d")


@dataclass(frozen=True, slots=True, kw_only=True)
class ListQuery:
    """The list page's query string, checked."""

    status: TraceStatus | None = None
    circuit: str | None = None
    version: str | None = None
    older_than: str | None = None
    poisoned: bool = False
    compensation_failed: bool = False
    cursor: str | None = None
    limit: int = 50

    @classmethod
    def parse(cls, params: Mapping[str, str], default_limit: int) -> ListQuery:
        """From the query string; `InvalidInput` names the field to fix."""
        text = {k: v.strip() for k, v in params.items() if v.strip()}
        status = rules.validate_status(text.get("status"))
        circuit = text.get("circuit")
        if circuit is not None:
            rules.validate_id("circuit", circuit)
        version = text.get("version")
        if version is not None:
            rules.validate_id("version", version)
        older_than = text.get("older_than")
        if older_than is not None:
            parse_duration(older_than)
        query = cls(
            status=status,
            circuit=circuit,
            version=version,
            older_than=older_than,
            poisoned=text.get("poisoned") in ("1", "on", "true"),
            compensation_failed=text.get("compensation_failed") in ("1", "on", "true"),
            cursor=text.get("cursor"),
            limit=_limit(text.get("limit"), default_limit),
        )
        return query.checked()

    def checked(self) -> ListQuery:
        if self.poisoned and self.compensation_failed:
            raise InvalidInput("poisoned traces are interrupted, failed compensations faulted")
        wanted = TraceStatus.INTERRUPTED if self.poisoned else None
        if self.compensation_failed:
            wanted = TraceStatus.FAULTED
        if wanted is not None and self.status not in (None, wanted):
            raise InvalidInput(
                f"that filter lists {wanted.value} traces only; drop the status filter"
            )
        return self if wanted is None else replace(self, status=wanted)

    def params(self, **changes: object) -> dict[str, str]:
        """The query string of this query with `changes` (None drops a field)."""
        values: dict[str, object] = {
            "status": None if self.status is None else self.status.value,
            "circuit": self.circuit,
            "version": self.version,
            "older_than": self.older_than,
            "poisoned": "1" if self.poisoned else None,
            "compensation_failed": "1" if self.compensation_failed else None,
            "cursor": self.cursor,
        }
        values.update(changes)
        return {k: str(v) for k, v in values.items() if v is not None}

    @property
    def filtered(self) -> bool:
        return any(v for k, v in self.params().items() if k != "cursor")


def _limit(text: str | None, default: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise InvalidInput(f"limit {text!r} must be a whole number from 1 to {MAX_LIMIT}")
    return int(text)


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    summary: TraceSummary
    notes: tuple[str, ...]
    """"poisoned", "compensation failed": what the status alone does not say."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ListPage:
    rows: list[Row]
    next_cursor: str | None
    scanned: int
    """Summaries read from the store for this page."""
    partial: bool
    """The budget ran out before the page was full: more matches may follow."""


async def list_page(
    store: PersistenceStore,
    query: ListQuery,
    *,
    max_attempts: int,
    scan_budget: int,
    load_budget: int,
) -> ListPage:
    """One page of traces matching every filter of `query`."""
    before = None
    if query.older_than is not None:
        before = await store.now_ms() - parse_duration(query.older_than)

    async def fetch(cursor: str | None, limit: int) -> TracePage:
        return await store.list_traces(
            status=query.status,
            circuit=query.circuit,
            updated_before_ms=before,
            min_attempts=max_attempts if query.poisoned else None,
            limit=limit,
            cursor=cursor,
        )

    post_filtered = query.version is not None or query.compensation_failed
    judged: dict[str, Row | None] = {}
    rows: list[Row] = []
    cursor, scanned = query.cursor, 0
    while True:
        need = query.limit - len(rows)
        page = await fetch(cursor, max(need, SCAN_BATCH) if post_filtered else need)
        scanned += len(page.items)
        found = await _judge(store, page.items, query, max_attempts, judged)
        if len(found) > need:
            # more matches than room: read again up to the last one shown, so that the
            # store's own cursor points right after it (cursors are the store's business)
            last = found[need - 1].summary.trace_id
            upto = 1 + next(i for i, s in enumerate(page.items) if s.trace_id == last)
            page = await fetch(cursor, upto)
            found = await _judge(store, page.items, query, max_attempts, judged)
        rows += found[:need]
        cursor = page.next_cursor
        if cursor is None or len(rows) >= query.limit:
            return ListPage(rows=rows, next_cursor=cursor, scanned=scanned, partial=False)
        # with compensation_failed, every trace read is a faulted one, loaded whole
        if scanned >= (load_budget if query.compensation_failed else scan_budget):
            return ListPage(rows=rows, next_cursor=cursor, scanned=scanned, partial=True)


async def _judge(
    store: PersistenceStore,
    items: tuple[TraceSummary, ...],
    query: ListQuery,
    max_attempts: int,
    judged: dict[str, Row | None],
) -> list[Row]:
    """The rows among `items` that pass the filters the store cannot apply, with their
    notes; `judged` remembers each trace's verdict (a faulted trace is loaded once)."""
    new = [s for s in items if s.trace_id not in judged]
    wanted = [s for s in new if query.version in (None, s.schematic_version)]
    failed = await _failed_compensations(store, wanted)
    for summary in new:
        judged[summary.trace_id] = None
    for summary in wanted:
        notes = _notes(summary, summary.trace_id in failed, max_attempts)
        if not query.compensation_failed or "compensation failed" in notes:
            judged[summary.trace_id] = Row(summary=summary, notes=notes)
    return [row for s in items if (row := judged[s.trace_id]) is not None]


def _notes(summary: TraceSummary, failed: bool, max_attempts: int) -> tuple[str, ...]:
    notes = []
    if failed:
        notes.append("compensation failed")
    if summary.status is TraceStatus.INTERRUPTED and summary.attempts >= max_attempts:
        notes.append("poisoned")
    return tuple(notes)


async def _failed_compensations(store: PersistenceStore, summaries: list[TraceSummary]) -> set[str]:
    """The ids among the faulted `summaries` whose compensation hook failed."""
    ids = [s.trace_id for s in summaries if s.status is TraceStatus.FAULTED]
    if not ids:
        return set()
    return {t.trace_id for t in await store.load_many(ids) if compensation_failed(t)}


async def find_trace(store: PersistenceStore, text: str) -> str | None:
    """The trace id searched for, if a trace is stored under it."""
    trace_id = text.strip()
    if not trace_id:
        return None
    rules.validate_id("trace id", trace_id)
    return trace_id if await store.load(trace_id) is not None else None
