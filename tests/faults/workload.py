"""The workload every campaign runs: a four-step order pipeline with side effects.

Each step records its run in the effects ledger (`tests.crash.effects`, a SQLite file
of its own) under `ctx.idempotency_key` and returns the ledger id of that run, so the
checker can tell which run of a step its stored checkpoint came from. A quarter of the
orders fault at `pack`; the compensation hook records its run in the ledger too.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prometheus_client import REGISTRY

from ranvier import (
    Axon,
    CheckpointPolicy,
    CompensationContext,
    LeaseSettings,
    Outcome,
    RetryPolicy,
    StepContext,
)
from ranvier.runtime import compensation_key
from tests.crash import effects

STEPS = ("reserve", "charge", "pack", "ship")
FAULT_STEP = STEPS.index("pack")
FAULT_KIND = "out_of_stock"
LEASE = LeaseSettings(ttl_ms=800, renew_every_ms=200)
CHECKPOINTS = CheckpointPolicy(retry=RetryPolicy(attempts=3, base_delay_s=0.02))
"""Short retries: an outage soon ends a run as unrecorded, and recover resumes it."""
MAX_ATTEMPTS = 1_000_000
"""Campaigns interrupt the same trace many times on purpose: never poisoned here."""


class Ledger:
    """The side effects of steps and hooks (the resource `ledger`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection = effects.connect(path)

    def record(self, trace_id: str, key: str, kind: str) -> int:
        return effects.record(self.conn, trace_id, key, kind)

    def has(self, key: str, kind: str) -> bool:
        return effects.has(self.conn, key, kind)

    def close(self) -> None:
        self.conn.close()


def ledger_path(run_dir: Path) -> Path:
    return run_dir / "effects.db"


def order(faulty: bool, size: int = 0) -> dict[str, Any]:
    """A trace's input; `size` pads every checkpoint with that many bytes."""
    return {"faulty": faulty, "n": 0, "exec": None, "pad": "x" * size}


def _step(name: str, rng: random.Random, pause_s: float) -> Any:
    async def step(value: dict[str, Any], ctx: StepContext) -> Any:
        exec_id = ctx.resources["ledger"].record(ctx.trace_id, ctx.idempotency_key, "step")
        if pause_s:
            await asyncio.sleep(rng.random() * pause_s)
        if name == STEPS[FAULT_STEP] and value["faulty"]:
            return Outcome.fault(FAULT_KIND, f"exec={exec_id}")
        return {**value, "n": value["n"] + 1, "exec": exec_id}

    step.__name__ = name
    return step


def _refund(rng: random.Random, pause_s: float) -> Any:
    async def refund(context: CompensationContext) -> None:
        key = compensation_key(context.trace_id, context.circuit, context.fault_kind)
        context.resources["ledger"].record(context.trace_id, key, "compensation")
        if pause_s:  # done, not yet marked: the window the claim protects
            await asyncio.sleep(rng.random() * pause_s)

    return refund


def pipeline(circuit: str, rng: random.Random, *, pause_s: float = 0.004) -> Axon:
    axon = Axon(
        circuit,
        version="1",
        lease=LEASE,
        checkpoint=CHECKPOINTS,
        compensation=_refund(rng, pause_s),
        max_attempts=MAX_ATTEMPTS,
    )
    for name in STEPS:
        axon.then(_step(name, rng, pause_s))
    return axon


def resources(ledger: Ledger) -> Mapping[str, Any]:
    return {"ledger": ledger}


def checkpoint_failures(circuit: str, adapter: str) -> int:
    """This process's `ranvier_checkpoint_failures_total` for the circuit."""
    labels = {"circuit": circuit, "adapter": adapter}
    return int(REGISTRY.get_sample_value("ranvier_checkpoint_failures_total", labels) or 0)
