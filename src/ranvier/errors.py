"""One error tree under `RanvierError`; a class docstring is its default message."""

from __future__ import annotations


class RanvierError(Exception):
    """A ranvier operation failed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or self.__class__.__name__).strip())


class InvalidInput(RanvierError, ValueError):
    """The input was rejected before anything was stored."""


class TraceNotFound(RanvierError, LookupError):
    """No trace is stored under this id."""


class TraceCompleted(RanvierError):
    """The trace is already completed; completed traces take no more writes."""


class CircuitMismatch(RanvierError):
    """The trace belongs to another circuit."""


class CheckpointConflict(RanvierError):
    """A different checkpoint is already stored for this step of the current run."""


class RestoreConflict(RanvierError):
    """A different trace with this id is already stored; restore will not overwrite it."""


class LeaseLost(RanvierError):
    """The lease on this trace has expired or was taken by another worker (stale fencing token)."""


class StoreUnavailable(RanvierError, ConnectionError):
    """The persistence store cannot be reached."""


class SchemaMismatch(RanvierError):
    """The stored schema is newer than this version of ranvier understands; upgrade ranvier."""


class VersionMismatch(RanvierError):
    """The trace was written by another version of the pipeline and no migration is registered."""


class BackupCorrupt(RanvierError, ValueError):
    """The backup file is corrupt or truncated; nothing was restored from it. Use another copy."""


class TraceBusy(RanvierError):
    """Another worker holds the live lease on this trace; it is running there."""


class TracePoisoned(RanvierError):
    """The trace was started or resumed too many times without completing; it is no longer
    resumed automatically. Fix the cause, then fork it, cancel it, or resume it with force."""


class SchemaMissing(RanvierError):
    """No ranvier schema is stored here; create it with `ranvier schema ensure` (or open
    the store with ensure_schema=True)."""
