"""Fork: re-run a trace from one step after a fix, as a new trace (issue 12, item 4)."""

from __future__ import annotations

from typing import Any

import pytest

from ranvier import (
    Axon,
    CircuitMismatch,
    CompletionState,
    ForkOrigin,
    InvalidInput,
    OutcomeKind,
    StepContext,
    TraceNotFound,
    rules,
)
from ranvier.stores.base import PersistenceStore
from tests.runtime.helpers import new_trace_id


class Steps:
    """a -> b -> c; b fails until `fixed`; every call is recorded."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.fixed = False

    def axon(self) -> Axon:
        return Axon("fixable", version="1").then(self.a).then(self.b).then(self.c)

    def a(self, value: Any, ctx: StepContext) -> Any:
        self.calls.append(("a", ctx.trace_id, value))
        return {"n": value["n"] + 1}

    def b(self, value: Any, ctx: StepContext) -> Any:
        self.calls.append(("b", ctx.trace_id, value))
        if not self.fixed:
            raise KeyError("qty")
        return {"n": value["n"] * 10}

    def c(self, value: Any, ctx: StepContext) -> Any:
        self.calls.append(("c", ctx.trace_id, value))
        return {"n": value["n"] + 2, "by": ctx.resources.get("who")}


async def _faulted(store: PersistenceStore, steps: Steps) -> str:
    source = new_trace_id("src")
    result = await steps.axon().run({"n": 1}, store=store, trace_id=source)
    assert result.completion is CompletionState.FAULT
    return source


async def test_a_fork_from_the_failed_step_after_a_fix_completes_and_leaves_the_source(
    store: PersistenceStore,
) -> None:
    steps = Steps()
    source = await _faulted(store, steps)
    before = await store.load(source)
    assert before is not None
    steps.fixed, steps.calls = True, []
    result = await steps.axon().fork(
        source, store=store, at="b", trace_id=new_trace_id("fork"), resources={"who": "w2"}
    )
    assert result.completion is CompletionState.SUCCESS
    assert result.value == {"n": 22, "by": "w2"}
    assert [c[0] for c in steps.calls] == ["b", "c"]  # a did not run again
    assert steps.calls[0][2] == {"n": 2}  # b got a's checkpointed value
    after = await store.load(source)
    assert after == before and after is not None
    assert rules.trace_digest(after) == rules.trace_digest(before)
    forked = await store.load(result.trace_id)
    assert forked is not None and forked.forked_from == ForkOrigin(trace_id=source, step=1)
    assert forked.input == {"n": 1}
    assert [(e.step, e.node_id) for e in forked.events] == [(0, "a"), (1, "b"), (2, "c")]
    assert forked.events[0].payload == before.events[0].payload


async def test_a_fork_takes_a_given_value_and_can_start_at_the_first_step(
    store: PersistenceStore,
) -> None:
    steps = Steps()
    source = await _faulted(store, steps)
    steps.fixed = True
    result = await steps.axon().fork(source, store=store, at="b", value={"n": 5})
    assert result.value == {"n": 52, "by": None}
    again = await steps.axon().fork(source, store=store, at="a")
    assert again.value == {"n": 22, "by": None}  # from the source's input
    forked = await store.load(again.trace_id)
    assert forked is not None and forked.forked_from == ForkOrigin(trace_id=source, step=0)


async def test_a_middle_step_of_a_completed_trace_can_be_forked(store: PersistenceStore) -> None:
    steps = Steps()
    steps.fixed = True
    done = await steps.axon().run({"n": 1}, store=store)
    steps.calls = []
    result = await steps.axon().fork(done.trace_id, store=store, at="c", value={"n": 0})
    assert result.value == {"n": 2, "by": None}
    assert [c[0] for c in steps.calls] == ["c"]


async def test_fork_refuses_what_it_cannot_do(store: PersistenceStore) -> None:
    steps = Steps()
    source = await _faulted(store, steps)
    with pytest.raises(InvalidInput, match="no step named 'zz'"):
        await steps.axon().fork(source, store=store, at="zz")
    with pytest.raises(InvalidInput, match="never ran"):
        await steps.axon().fork(source, store=store, at="c")
    with pytest.raises(TraceNotFound):
        await steps.axon().fork("missing-trace", store=store, at="b")
    with pytest.raises(InvalidInput, match="new trace id"):
        await steps.axon().fork(source, store=store, at="b", trace_id=source)
    other = Axon("other").then(steps.a, name="b")
    with pytest.raises(CircuitMismatch):
        await other.fork(source, store=store, at="b")
    trace = await store.load(source)
    assert trace is not None and trace.events[-1].outcome_kind is OutcomeKind.FAULT
