"""A failing step is visible: logged with its traceback, stored with it (capped)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from ranvier import Axon, CompletionState, StepContext
from ranvier.runtime.outcome import MAX_TRACEBACK_CHARS, Outcome
from ranvier.stores.base import PersistenceStore


def first(value: Any, ctx: StepContext) -> Any:
    return value


def needs_qty(order: dict[str, Any], ctx: StepContext) -> Any:
    return order["qty"]


async def test_a_step_exception_is_logged_at_error_with_traceback_trace_step_and_node(
    store: PersistenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    axon = Axon("visible").then(first).then(needs_qty)
    with caplog.at_level(logging.ERROR, logger="ranvier.runtime"):
        result = await axon.run({"id": 1}, store=store)
    assert result.completion is CompletionState.FAULT
    (record,) = [r for r in caplog.records if r.name == "ranvier.runtime"]
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert f"trace_id={result.trace_id}" in message
    assert "step=1" in message and "node=needs_qty" in message
    assert record.exc_info is not None and record.exc_info[0] is KeyError
    assert 'order["qty"]' in caplog.text  # the traceback's source line


async def test_the_fault_checkpoint_keeps_kind_message_and_the_traceback(
    store: PersistenceStore,
) -> None:
    result = await Axon("visible").then(first).then(needs_qty).run({"id": 1}, store=store)
    trace = await store.load(result.trace_id)
    assert trace is not None
    payload = trace.events[-1].payload
    assert (payload["kind"], payload["message"]) == ("KeyError", "'qty'")
    assert "in needs_qty" in payload["traceback"]
    assert payload["traceback"].rstrip().endswith("KeyError: 'qty'")
    assert result.outcome.traceback == payload["traceback"]


def test_a_long_traceback_keeps_its_last_8_kib() -> None:
    try:
        raise RuntimeError("x" * 20_000 + " the cause")
    except RuntimeError as exc:
        fault = Outcome.from_exception(exc)
    assert fault.traceback is not None
    assert len(fault.traceback) == MAX_TRACEBACK_CHARS == 8192
    assert fault.traceback.startswith("[... traceback cut to its last 8192 characters ...]")
    assert fault.traceback.rstrip().endswith("the cause")


def test_a_short_traceback_is_kept_whole() -> None:
    try:
        raise ValueError("small")
    except ValueError as exc:
        fault = Outcome.from_exception(exc)
    assert fault.traceback is not None and fault.traceback.startswith("Traceback")
    assert fault.checkpoint_payload()["traceback"] == fault.traceback
    again = Outcome.from_checkpoint(fault.kind, fault.checkpoint_payload())
    assert again == fault
