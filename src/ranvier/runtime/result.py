"""`RunResult`: what `run` and `resume` return."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from ranvier.model import CompletionState, JSONValue
from ranvier.runtime.outcome import Outcome


class RunStatus(StrEnum):
    """How the call ended, beside the trace's stored completion."""

    COMPLETED = "completed"
    """The trace is completed in the store (see `completion`)."""
    COMPENSATING = "compensating"
    """A compensation claim exists whose hook never finished; an operator decides."""
    LEASE_LOST = "lease_lost"
    """The lease was lost: the run stopped at a step boundary and wrote nothing more."""
    UNRECORDED = "unrecorded"
    """The store could not record the end of the run; the trace stays resumable."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    trace_id: str
    status: RunStatus
    outcome: Outcome
    """The final outcome: Next (success), Branch, Fault or Cancelled."""
    completion: CompletionState | None
    """The completion stored for the trace (None if it is still open)."""
    steps_run: int = 0
    """Steps executed by this call (0 when a completed trace was returned as stored)."""
    resumed: bool = False
    """True when this call continued a trace that already had checkpoints."""

    @property
    def value(self) -> JSONValue:
        return self.outcome.value

    @property
    def ok(self) -> bool:
        return self.completion is CompletionState.SUCCESS
