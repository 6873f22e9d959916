"""`Outcome`: what a step returns to steer the pipeline (control flow as data)."""

from __future__ import annotations

import traceback
from dataclasses import dataclass

from ranvier.model import JSONValue, OutcomeKind


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one step.

    A plain return value is `Outcome.next(value)`; a raised exception is
    `Outcome.fault(type(exc).__name__, str(exc))`. `target` is the jump target, the
    branch name, the emitted event's name or the fault kind, depending on `kind`.
    """

    kind: OutcomeKind
    value: JSONValue = None
    target: str | None = None
    message: str | None = None
    traceback: str | None = None
    """For a fault raised as an exception: its formatted traceback (capped)."""

    @classmethod
    def next(cls, value: JSONValue = None) -> Outcome:
        """Continue with the next step, `value` as its input."""
        return cls(OutcomeKind.NEXT, value)

    @classmethod
    def branch(cls, name: str, value: JSONValue = None) -> Outcome:
        """End the run successfully through the named branch."""
        return cls(OutcomeKind.BRANCH, value, name)

    @classmethod
    def jump(cls, step: str, value: JSONValue = None) -> Outcome:
        """Continue at the step named `step` (earlier or later), `value` as its input."""
        return cls(OutcomeKind.JUMP, value, step)

    @classmethod
    def emit(cls, event: str, value: JSONValue = None) -> Outcome:
        """Record the named event in the trace, then continue with the next step."""
        return cls(OutcomeKind.EMIT, value, event)

    @classmethod
    def fault(
        cls, kind: str, message: str | None = None, *, traceback: str | None = None
    ) -> Outcome:
        """End the run as a fault of `kind` (the compensation key's last part)."""
        return cls(OutcomeKind.FAULT, None, kind, message, traceback)

    @classmethod
    def from_exception(cls, exc: BaseException) -> Outcome:
        """The fault an exception raised in a step becomes: kind, message, traceback."""
        return cls.fault(type(exc).__name__, str(exc), traceback=format_traceback(exc))

    @classmethod
    def cancelled(cls) -> Outcome:
        """The run was cancelled (set by the runtime, not returned by steps)."""
        return cls(OutcomeKind.CANCELLED)

    @property
    def fault_kind(self) -> str | None:
        return self.target if self.kind is OutcomeKind.FAULT else None

    def checkpoint_payload(self) -> JSONValue:
        """What the checkpoint of this outcome stores (see docs/runtime.md)."""
        kind = self.kind
        if kind is OutcomeKind.NEXT:
            return self.value
        if kind is OutcomeKind.FAULT:
            if self.traceback is None:
                return {"kind": self.target, "message": self.message}
            return {"kind": self.target, "message": self.message, "traceback": self.traceback}
        return {_WRAP_KEY[kind]: self.target, "value": self.value}

    @classmethod
    def from_checkpoint(cls, kind: OutcomeKind, payload: JSONValue) -> Outcome:
        """The outcome a stored checkpoint records (inverse of `checkpoint_payload`)."""
        if kind is OutcomeKind.NEXT:
            return cls(kind, payload)
        if kind is OutcomeKind.FAULT:
            return cls(
                kind, None, payload.get("kind"), payload.get("message"), payload.get("traceback")
            )
        key = _WRAP_KEY.get(kind)
        if key is None or not isinstance(payload, dict):
            return cls(kind, payload)
        return cls(kind, payload.get("value"), payload.get(key))


MAX_TRACEBACK_CHARS = 8192
"""A fault's stored traceback keeps its last 8 KiB (the innermost frames and the error)."""


def format_traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    if len(text) <= MAX_TRACEBACK_CHARS:
        return text
    marker = "[... traceback cut to its last 8192 characters ...]\n"
    return marker + text[len(text) - (MAX_TRACEBACK_CHARS - len(marker)) :]


_WRAP_KEY = {
    OutcomeKind.BRANCH: "branch",
    OutcomeKind.JUMP: "jump",
    OutcomeKind.EMIT: "event",
    OutcomeKind.COMPENSATED: "key",
    OutcomeKind.CANCELLED: "reason",
}
