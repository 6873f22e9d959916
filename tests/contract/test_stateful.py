"""A Hypothesis state machine drives a store and a plain Python model side by side.

Hypothesis is synchronous, so the test owns an `asyncio.Runner` and every rule runs
one store call in it. Each example uses fresh trace ids, so examples never interfere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ranvier import (
    CheckpointConflict,
    CircuitMismatch,
    CompletionState,
    InvalidInput,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceCompleted,
    TraceNotFound,
    rules,
)
from ranvier.stores.base import PersistenceStore
from tests.adapters import all_factories
from tests.contract.helpers import all_pages

T = TypeVar("T")
Event = tuple[int, str, str | None, str]  # step, kind, node, canonical payload JSON

SETTINGS = settings(max_examples=25, stateful_step_count=25, deadline=None)
N_TRACES = 3
TRACES = st.integers(0, N_TRACES - 1)
STEPS = st.integers(0, 4)
NODES = st.sampled_from([None, "a", "b"])
KINDS = st.sampled_from([OutcomeKind.NEXT, OutcomeKind.FAULT])
CIRCUITS = st.sampled_from(["c0", "c1"])
PAYLOADS = st.sampled_from([None, 0, "x", {"k": 1}, {"k": 1.5, "l": [True]}, [1, 2]])


@dataclass
class ModelTrace:
    circuit: str
    events: dict[int, Event] = field(default_factory=dict)
    superseded: list[Event] = field(default_factory=list)
    completion: CompletionState | None = None
    resumed_from_step: int | None = None


def _event(step: int, kind: OutcomeKind, node: str | None, payload: Any) -> Event:
    return (step, kind.value, node, orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode())


def _stored(e: PersistenceEnvelope) -> Event:
    return _event(e.step, e.outcome_kind, e.node_id, e.payload)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self, runner: asyncio.Runner, store: PersistenceStore) -> None:
        super().__init__()
        self.runner = runner
        self.store = store
        self.prefix = f"sm-{uuid.uuid4().hex[:10]}"
        self.model: dict[str, ModelTrace] = {}
        self.clock = 1_000

    def run(self, call: Coroutine[Any, Any, T]) -> T:
        return self.runner.run(call)

    def tid(self, index: int) -> str:
        return f"{self.prefix}-{index}"

    def expect(self, errors: set[type[Exception]], call: Coroutine[Any, Any, Any]) -> bool:
        """Run `call`; True if it succeeded, which it must iff `errors` is empty."""
        try:
            self.run(call)
        except (CheckpointConflict, CircuitMismatch, TraceCompleted, TraceNotFound) as exc:
            assert type(exc) in errors, f"unexpected {exc!r}"
            return False
        except InvalidInput as exc:
            assert InvalidInput in errors, f"unexpected {exc!r}"
            return False
        assert not errors, f"expected one of {errors}, the call succeeded"
        return True

    def _append(self, index: int, env: PersistenceEnvelope) -> None:
        trace = self.model.get(self.tid(index))
        errors: set[type[Exception]] = set()
        new = _event(env.step, env.outcome_kind, env.node_id, env.payload)
        if trace is not None:
            if trace.circuit != env.circuit:
                errors.add(CircuitMismatch)
            if trace.completion is not None:
                errors.add(TraceCompleted)
            if not errors and trace.events.get(env.step, new) != new:
                errors.add(CheckpointConflict)
        if self.expect(errors, self.store.append(env)):
            if trace is None:
                trace = self.model[self.tid(index)] = ModelTrace(env.circuit)
            trace.events[env.step] = new

    def _envelope(self, index: int, step: int, **fields: Any) -> PersistenceEnvelope:
        self.clock += 1
        return PersistenceEnvelope(
            trace_id=self.tid(index), step=step, timestamp_ms=self.clock, **fields
        )

    def _circuit(self, index: int) -> str:
        trace = self.model.get(self.tid(index))
        return trace.circuit if trace is not None else f"{self.prefix}-c{index % 2}"

    def _with_events(self) -> list[int]:
        return [i for i in range(N_TRACES) if self.model.get(self.tid(i), ModelTrace("")).events]

    def _draw_recorded(self, data: st.DataObject) -> tuple[int, Event]:
        """A trace with events and one of its live events."""
        index = data.draw(st.sampled_from(self._with_events()), label="trace")
        events = self.model[self.tid(index)].events
        return index, events[data.draw(st.sampled_from(sorted(events)), label="step")]

    @rule(index=TRACES, step=STEPS, kind=KINDS, node=NODES, payload=PAYLOADS)
    def append(
        self, index: int, step: int, kind: OutcomeKind, node: str | None, payload: Any
    ) -> None:
        env = self._envelope(
            index,
            step,
            circuit=self._circuit(index),
            schematic_version="1",
            outcome_kind=kind,
            node_id=node,
            payload=payload,
        )
        self._append(index, env)

    @rule(index=TRACES, step=STEPS)
    def append_to_another_circuit(self, index: int, step: int) -> None:
        env = self._envelope(index, step, circuit=f"{self.prefix}-other", schematic_version="1")
        self._append(index, env)

    @precondition(lambda self: bool(self._with_events()))
    @rule(data=st.data())
    def identical_reappend(self, data: st.DataObject) -> None:
        index, (step, kind, node, payload) = self._draw_recorded(data)
        env = self._envelope(
            index,
            step,
            circuit=self._circuit(index),
            schematic_version="1",
            outcome_kind=OutcomeKind(kind),
            node_id=node,
            payload=orjson.loads(payload),
        )
        self._append(index, env)

    @precondition(lambda self: bool(self._with_events()))
    @rule(data=st.data())
    def conflicting_append(self, data: st.DataObject) -> None:
        index, (step, kind, node, _) = self._draw_recorded(data)
        env = self._envelope(
            index,
            step,
            circuit=self._circuit(index),
            schematic_version="1",
            outcome_kind=OutcomeKind(kind),
            node_id=node,
            payload={"conflict": self.clock},
        )
        self._append(index, env)

    def _resume(self, index: int, from_step: int) -> None:
        trace = self.model.get(self.tid(index))
        errors: set[type[Exception]] = set()
        last = -1 if trace is None or not trace.events else max(trace.events)
        if trace is None:
            errors.add(TraceNotFound)
        elif trace.completion is not None:
            errors.add(TraceCompleted)
        if from_step < -1 or from_step > last:
            errors.add(InvalidInput)
        if self.expect(errors, self.store.resume(self.tid(index), from_step)):
            assert trace is not None
            for step in sorted(s for s in trace.events if s > from_step):
                trace.superseded.append(trace.events.pop(step))
            trace.resumed_from_step = from_step

    @rule(index=TRACES, data=st.data())
    def resume(self, index: int, data: st.DataObject) -> None:
        trace = self.model.get(self.tid(index))
        last = max(trace.events, default=-1) if trace is not None else 2
        self._resume(index, data.draw(st.integers(-1, last), label="from_step"))

    @rule(index=TRACES, beyond=st.integers(1, 3))
    def resume_out_of_range(self, index: int, beyond: int) -> None:
        trace = self.model.get(self.tid(index))
        last = max(trace.events, default=-1) if trace is not None else -1
        self._resume(index, -1 - beyond if beyond == 3 else last + beyond)

    @rule(index=TRACES, state=st.sampled_from(list(CompletionState)))
    def complete(self, index: int, state: CompletionState) -> None:
        trace = self.model.get(self.tid(index))
        errors: set[type[Exception]] = set()
        if trace is None:
            errors.add(TraceNotFound)
        else:
            try:
                rules.completion_change("model", trace.completion, state)
            except TraceCompleted:
                errors.add(TraceCompleted)
        if self.expect(errors, self.store.complete(self.tid(index), state)):
            assert trace is not None
            trace.completion = state

    @rule(index=TRACES)
    def delete(self, index: int) -> None:
        existed = self.run(self.store.delete(self.tid(index)))
        assert existed == (self.model.pop(self.tid(index), None) is not None)

    @rule(index=TRACES)
    def load_and_compare(self, index: int) -> None:
        self.compare(self.tid(index), self.run(self.store.load(self.tid(index))))

    @rule(circuit=CIRCUITS, limit=st.integers(1, 3))
    def list_and_compare(self, circuit: str, limit: int) -> None:
        name = f"{self.prefix}-{circuit}"
        listed = self.run(all_pages(self.store, circuit=name, limit=limit))
        expected = {tid: t for tid, t in self.model.items() if t.circuit == name}
        assert sorted(s.trace_id for s in listed) == sorted(expected)
        for summary in listed:
            trace = expected[summary.trace_id]
            status = rules.trace_status(trace.completion, lease_live=False)
            assert (summary.status, summary.completion) == (status, trace.completion)
            assert summary.event_count == len(trace.events)
            assert summary.last_step == max(trace.events, default=None)
            assert summary.resumed_from_step == trace.resumed_from_step

    @invariant()
    def every_trace_matches_the_model(self) -> None:
        for index in range(N_TRACES):
            self.load_and_compare(index)

    def compare(self, trace_id: str, stored: PersistedTrace | None) -> None:
        expected = self.model.get(trace_id)
        if expected is None:
            assert stored is None
            return
        assert stored is not None
        assert stored.circuit == expected.circuit
        assert [_stored(e) for e in stored.events] == [
            expected.events[s] for s in sorted(expected.events)
        ]
        assert Counter(_stored(e) for e in stored.superseded_events) == Counter(expected.superseded)
        assert stored.completion == expected.completion
        assert (stored.completed_at_ms is None) == (expected.completion is None)
        assert stored.resumed_from_step == expected.resumed_from_step


@pytest.mark.parametrize("adapter", sorted(all_factories()))
def test_store_matches_a_simple_model(
    adapter: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    factory = all_factories()[adapter](request, tmp_path)
    with asyncio.Runner() as runner:
        opener = runner.run(factory.__aenter__())
        try:
            store = runner.run(opener())
            run_state_machine_as_test(lambda: StoreMachine(runner, store), settings=SETTINGS)
        finally:
            runner.run(factory.__aexit__(None, None, None))
