"""ranvier: durable pipelines whose every step is checkpointed to a persistence store."""

from __future__ import annotations

import importlib
from typing import Any

from ranvier.errors import (
    BackupCorrupt,
    CheckpointConflict,
    CircuitMismatch,
    InvalidInput,
    LeaseLost,
    RanvierError,
    RestoreConflict,
    SchemaMismatch,
    SchemaMissing,
    StoreUnavailable,
    TraceBusy,
    TraceCompleted,
    TraceNotFound,
    TracePoisoned,
    VersionMismatch,
)
from ranvier.model import (
    CompensationContext,
    CompensationRecord,
    CompensationState,
    CompletionState,
    ForkOrigin,
    Intervention,
    Lease,
    LeaseToken,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    ResumeCursor,
    StoreDescription,
    TracePage,
    TraceStart,
    TraceStatus,
    TraceSummary,
)
from ranvier.runtime import (
    App,
    Axon,
    CheckpointPolicy,
    CompensationResult,
    LeaseSettings,
    OnFailure,
    Outcome,
    RecoveredTrace,
    RecoveryAction,
    RecoveryReport,
    RetryPolicy,
    RunResult,
    RunStatus,
    StepContext,
    cancel,
    compensate,
    recover,
)
from ranvier.stores.base import CompensationIdempotencyStore, PersistenceStore, StoreCapabilities
from ranvier.stores.memory import InMemoryCompensationIdempotencyStore, InMemoryPersistenceStore
from ranvier.stores.url import open_store

__version__ = "0.2.0"

# Adapters with optional drivers load on first use, so `import ranvier` needs no extra.
_LAZY = {
    "SqlitePersistenceStore": "ranvier.stores.sqlite",
    "SqliteCompensationIdempotencyStore": "ranvier.stores.sqlite",
    "PostgresPersistenceStore": "ranvier.stores.postgres",
    "PostgresCompensationIdempotencyStore": "ranvier.stores.postgres",
    "RedisPersistenceStore": "ranvier.stores.redis",
    "RedisCompensationIdempotencyStore": "ranvier.stores.redis",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ranvier' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "App",
    "Axon",
    "BackupCorrupt",
    "CheckpointConflict",
    "CheckpointPolicy",
    "CircuitMismatch",
    "CompensationContext",
    "CompensationIdempotencyStore",
    "CompensationRecord",
    "CompensationResult",
    "CompensationState",
    "CompletionState",
    "ForkOrigin",
    "InMemoryCompensationIdempotencyStore",
    "InMemoryPersistenceStore",
    "Intervention",
    "InvalidInput",
    "Lease",
    "LeaseLost",
    "LeaseSettings",
    "LeaseToken",
    "OnFailure",
    "Outcome",
    "OutcomeKind",
    "PersistedTrace",
    "PersistenceEnvelope",
    "PersistenceStore",
    "PostgresCompensationIdempotencyStore",
    "PostgresPersistenceStore",
    "RanvierError",
    "RecoveredTrace",
    "RecoveryAction",
    "RecoveryReport",
    "RedisCompensationIdempotencyStore",
    "RedisPersistenceStore",
    "RestoreConflict",
    "ResumeCursor",
    "RetryPolicy",
    "RunResult",
    "RunStatus",
    "SchemaMismatch",
    "SchemaMissing",
    "SqliteCompensationIdempotencyStore",
    "SqlitePersistenceStore",
    "StepContext",
    "StoreCapabilities",
    "StoreDescription",
    "StoreUnavailable",
    "TraceBusy",
    "TraceCompleted",
    "TraceNotFound",
    "TracePage",
    "TracePoisoned",
    "TraceStart",
    "TraceStatus",
    "TraceSummary",
    "VersionMismatch",
    "__version__",
    "cancel",
    "compensate",
    "open_store",
    "recover",
]
