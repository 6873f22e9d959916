"""The backup file: gzip'd JSON lines, checked line by line and by its footer.

    {"kind": "header", "format": "ranvier-backup", "format_version": 2, ...}
    {"kind": "trace", "digest": "<sha256>", "trace": {...every PersistedTrace field...}}
    ...
    {"kind": "compensation", "record": {"key", "state", "claimed_at_ms", ...}}
    {"kind": "lease_token", "trace_id": "...", "token": N}
    {"kind": "footer", "traces": N, "events": E, "compensations": C, "lease_tokens": L,
     "checksum": "<sha256 of the digests>"}

Each trace line carries `rules.trace_digest` of its trace, each other line is digested
as its canonical JSON; the footer's checksum is the sha256 of those digests in file
order. A reader recomputes both, so a flipped byte, a missing line or a truncated file
is reported as `BackupCorrupt`. Version 1 files (traces only) are still read.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from ranvier import rules
from ranvier.errors import BackupCorrupt, InvalidInput
from ranvier.model import CompensationRecord, LeaseToken, PersistedTrace, now_ms
from ranvier.ops.codec import record_from_dict, record_to_dict, trace_from_dict, trace_to_dict

FORMAT_NAME = "ranvier-backup"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupHeader:
    format_version: int
    created_at_ms: int
    source_adapter: str
    ranvier_version: str


@dataclass(frozen=True, slots=True, kw_only=True)
class BackupSummary:
    """What a complete backup file holds (its footer, as checked by a reader)."""

    header: BackupHeader
    traces: int
    events: int
    checksum: str
    compensations: int = 0
    lease_tokens: int = 0


class BackupWriter:
    """Writes a backup to `path` through a temp file renamed into place on success.

    A failed backup leaves no file behind, so a half-written backup never looks whole.
    """

    def __init__(self, path: Path, *, source_adapter: str) -> None:
        from ranvier import __version__

        self.path = path
        self._partial = path.with_name(path.name + ".partial")
        # closed by finish() or abort(): the writer is itself the context manager
        self._file = gzip.GzipFile(self._partial, "wb", compresslevel=5)
        self._checksum = hashlib.sha256()
        self.traces = self.events = self.compensations = self.lease_tokens = 0
        self.header = BackupHeader(
            format_version=FORMAT_VERSION,
            created_at_ms=now_ms(),
            source_adapter=source_adapter,
            ranvier_version=__version__,
        )
        self._line({"kind": "header", "format": FORMAT_NAME, **_header_dict(self.header)})

    def _line(self, record: dict[str, Any]) -> None:
        self._file.write(orjson.dumps(record) + b"\n")

    def write(self, trace: PersistedTrace) -> None:
        digest = rules.trace_digest(trace)
        self._line({"kind": "trace", "digest": digest, "trace": trace_to_dict(trace)})
        self._checksum.update(digest.encode())
        self.traces += 1
        self.events += len(trace.events) + len(trace.superseded_events)

    def write_compensation(self, record: CompensationRecord) -> None:
        self._digested({"kind": "compensation", "record": record_to_dict(record)})
        self.compensations += 1

    def write_lease_token(self, token: LeaseToken) -> None:
        self._digested({"kind": "lease_token", "trace_id": token.trace_id, "token": token.token})
        self.lease_tokens += 1

    def _digested(self, record: dict[str, Any]) -> None:
        data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
        self._file.write(data + b"\n")
        self._checksum.update(hashlib.sha256(data).hexdigest().encode())

    def finish(self) -> BackupSummary:
        checksum = self._checksum.hexdigest()
        footer = {
            "traces": self.traces,
            "events": self.events,
            "compensations": self.compensations,
            "lease_tokens": self.lease_tokens,
            "checksum": checksum,
        }
        self._line({"kind": "footer", **footer})
        self._file.close()
        os.replace(self._partial, self.path)
        return BackupSummary(header=self.header, **footer)  # type: ignore[arg-type]

    def abort(self) -> None:
        self._file.close()
        self._partial.unlink(missing_ok=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()


def _header_dict(header: BackupHeader) -> dict[str, Any]:
    return {
        "format_version": header.format_version,
        "created_at_ms": header.created_at_ms,
        "source_adapter": header.source_adapter,
        "ranvier_version": header.ranvier_version,
    }


class BackupReader:
    """Iterates `(trace, digest)` over a backup, checking every line; then `summary`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.summary: BackupSummary | None = None
        self.compensations: list[CompensationRecord] = []
        """The ledger's records, read after the traces (complete once iteration ends)."""
        self.lease_tokens: list[LeaseToken] = []
        if not path.is_file():
            raise InvalidInput(f"backup file {str(path)!r} does not exist")

    def _corrupt(self, line_no: int, why: str) -> BackupCorrupt:
        return BackupCorrupt(
            f"backup {str(self.path)!r} is corrupt at line {line_no}: {why}; "
            "nothing was restored from it, use another copy"
        )

    def _lines(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            with gzip.open(self.path, "rb") as file:
                for line_no, raw in enumerate(file, start=1):
                    try:
                        record = orjson.loads(raw)
                    except orjson.JSONDecodeError as exc:
                        raise self._corrupt(line_no, f"not JSON ({exc})") from None
                    if not isinstance(record, dict):
                        raise self._corrupt(line_no, "not a JSON object")
                    yield line_no, record
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise BackupCorrupt(
                f"backup {str(self.path)!r} is truncated or not gzip ({exc}); "
                "nothing was restored from it, use another copy"
            ) from None

    def __iter__(self) -> Iterator[tuple[PersistedTrace, str]]:
        lines = self._lines()
        header = self._header(next(lines, (1, {})))
        checksum = hashlib.sha256()
        traces = events = 0
        self.compensations, self.lease_tokens = [], []
        for line_no, record in lines:
            kind = record.get("kind")
            if kind == "footer":
                counts = {"traces": traces, "events": events, **self._extra_counts()}
                self._check_footer(line_no, record, counts, checksum.hexdigest())
                self.summary = BackupSummary(header=header, checksum=checksum.hexdigest(), **counts)
                if next(lines, None) is not None:
                    raise self._corrupt(line_no + 1, "data after the footer")
                return
            if kind in ("compensation", "lease_token") and header.format_version > 1:
                self._other(line_no, record)
                data = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
                checksum.update(hashlib.sha256(data).hexdigest().encode())
                continue
            if kind != "trace":
                raise self._corrupt(line_no, f"unexpected record kind {kind!r}")
            trace, digest = self._trace(line_no, record)
            checksum.update(digest.encode())
            traces += 1
            events += len(trace.events) + len(trace.superseded_events)
            yield trace, digest
        raise BackupCorrupt(
            f"backup {str(self.path)!r} is truncated: it ends after {traces} traces without "
            "its footer; nothing was restored from it, use another copy"
        )

    def _extra_counts(self) -> dict[str, int]:
        return {"compensations": len(self.compensations), "lease_tokens": len(self.lease_tokens)}

    def _other(self, line_no: int, record: dict[str, Any]) -> None:
        try:
            if record["kind"] == "compensation":
                self.compensations.append(rules.validate_record(record_from_dict(record["record"])))
            else:
                token = LeaseToken(trace_id=record["trace_id"], token=record["token"])
                self.lease_tokens.append(rules.validate_token(token))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(line_no, f"bad {record['kind']} record ({exc})") from None

    def _header(self, first: tuple[int, dict[str, Any]]) -> BackupHeader:
        line_no, record = first
        if record.get("kind") != "header" or record.get("format") != FORMAT_NAME:
            raise self._corrupt(line_no, f"no {FORMAT_NAME} header (is this a ranvier backup?)")
        version = record.get("format_version")
        if version not in READABLE_VERSIONS:
            raise BackupCorrupt(
                f"backup {str(self.path)!r} has format version {version!r}; this ranvier reads "
                f"versions {READABLE_VERSIONS}: restore it with the ranvier that wrote it"
            )
        try:
            return BackupHeader(
                format_version=version,
                created_at_ms=int(record["created_at_ms"]),
                source_adapter=str(record["source_adapter"]),
                ranvier_version=str(record["ranvier_version"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise self._corrupt(line_no, f"header field missing ({exc})") from None

    def _trace(self, line_no: int, record: dict[str, Any]) -> tuple[PersistedTrace, str]:
        try:
            trace = trace_from_dict(record["trace"])
        except (KeyError, InvalidInput) as exc:
            raise self._corrupt(line_no, str(exc)) from None
        digest = rules.trace_digest(trace)
        if digest != record.get("digest"):
            raise self._corrupt(line_no, f"trace {trace.trace_id!r} does not match its digest")
        return trace, digest

    def _check_footer(
        self, line_no: int, record: dict[str, Any], counts: dict[str, int], checksum: str
    ) -> None:
        for name, count in counts.items():
            if record.get(name, 0) != count:
                raise self._corrupt(
                    line_no, f"footer counts {record.get(name)} {name}, the file holds {count}"
                )
        if record.get("checksum") != checksum:
            raise self._corrupt(line_no, "footer checksum does not match the traces")
