"""Builders shared by the runtime tests: pipelines, a recording proxy, a flaky store."""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

from ranvier import (
    Axon,
    CheckpointPolicy,
    OutcomeKind,
    PersistenceEnvelope,
    RetryPolicy,
    StepContext,
    StoreUnavailable,
)
from ranvier.stores.base import PersistenceStore

FAST_RETRY = RetryPolicy(attempts=3, base_delay_s=0.001)


def new_trace_id(label: str = "rt") -> str:
    return f"{label}-{uuid.uuid4().hex[:12]}"


class Recorder:
    """Steps that record every call (node, idempotency key, attempt, input)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int, Any]] = []

    def step(self, name: str, add: int = 1) -> Any:
        def run(value: Any, ctx: StepContext) -> Any:
            self.calls.append((ctx.node_id, ctx.idempotency_key, ctx.attempt, value))
            return value + add

        run.__name__ = name
        return run

    @property
    def nodes(self) -> list[str]:
        return [c[0] for c in self.calls]


def chain(recorder: Recorder, names: str = "a b c d", *, name: str = "chain", **kw: Any) -> Axon:
    kw.setdefault("checkpoint", CheckpointPolicy(retry=FAST_RETRY))
    axon = Axon(name, version="1", **kw)
    for step in names.split():
        axon.then(recorder.step(step))
    return axon


def envelope(
    trace_id: str,
    step: int,
    node: str,
    payload: Any,
    *,
    kind: OutcomeKind = OutcomeKind.NEXT,
    circuit: str = "chain",
    version: str = "1",
) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit=circuit,
        schematic_version=version,
        step=step,
        outcome_kind=kind,
        node_id=node,
        payload=payload,
    )


class StoreProxy:
    """Wraps a store: counts calls, and fails chosen methods with StoreUnavailable."""

    def __init__(self, inner: PersistenceStore) -> None:
        self._inner = inner
        self.calls: Counter[str] = Counter()
        self.fail: Counter[str] = Counter()  # method -> how many next calls fail
        self.fail_always: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if name in self.fail_always or self.fail[name] > 0:
                self.fail[name] -= 1
                raise StoreUnavailable(f"injected: {name} cannot reach the store")
            return await attr(*args, **kwargs)

        return call
