"""`StepContext`: what a step knows about the run it is part of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class StepContext:
    """Passed to every step as its second argument (read-only by convention).

    Not a frozen dataclass on purpose: one is built per step, and frozen construction
    costs about twice as much on the checkpoint path.

    `idempotency_key` ("{trace_id}:{step}") is the same when a step re-runs after a
    crash: pass it to external systems so they apply the step's effect once.
    """

    trace_id: str
    step: int
    """The checkpoint number this step will write (0, 1, 2... in the trace)."""
    node_id: str
    """The step's name."""
    attempt: int
    """1 for the first try in this process, then 2, 3... when the step retries."""
    resources: Mapping[str, Any]
    """What the caller passed as `resources=` (clients, pools); never persisted."""

    @property
    def idempotency_key(self) -> str:
        return f"{self.trace_id}:{self.step}"
