"""A store wrapper that writes every write call and its outcome to the worker's history.

It also counts the `StoreUnavailable` errors raised by the calls the runtime's
checkpointer makes (appends, resumes, completions, the compensation claim and mark):
guarantee 6 says each of them is counted once in `ranvier_checkpoint_failures_total`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ranvier import Lease, PersistenceEnvelope, StoreUnavailable
from tests.faults.history import History

COUNTED = frozenset(
    {"append", "resume", "complete", "claim", "was_compensated", "mark_compensated"}
)


def exec_of(payload: Any) -> int | None:
    """The ledger id of the step run that produced a checkpoint's payload."""
    if isinstance(payload, dict):
        if "exec" in payload:
            return int(payload["exec"])
        message = str(payload.get("message", ""))
        if message.startswith("exec="):
            return int(message.removeprefix("exec="))
    return None


class Recorder:
    def __init__(self, history: History) -> None:
        self.history = history
        self.failures = 0
        """StoreUnavailable raised by the COUNTED calls."""

    async def call(self, op: str, call: Callable[[], Awaitable[Any]], **fields: Any) -> Any:
        try:
            result = await call()
        except Exception as exc:
            if isinstance(exc, StoreUnavailable) and op in COUNTED:
                self.failures += 1
            self.history.record(op, result=type(exc).__name__, error=str(exc)[:300], **fields)
            raise
        self.history.record(op, result="ok", **fields, **_describe(op, result))
        return result


def _describe(op: str, result: Any) -> dict[str, Any]:
    if isinstance(result, Lease):
        return {"token": result.token}
    if isinstance(result, bool) or (op == "acquire_lease" and result is None):
        return {"value": result}
    return {}


class RecordingCompensations:
    def __init__(self, inner: Any, recorder: Recorder) -> None:
        self._inner = inner
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def claim(self, key: str) -> bool:
        return bool(await self._recorder.call("claim", lambda: self._inner.claim(key), key=key))

    async def was_compensated(self, key: str) -> bool:
        call = lambda: self._inner.was_compensated(key)  # noqa: E731
        return bool(await self._recorder.call("was_compensated", call, key=key))

    async def mark_compensated(self, key: str) -> None:
        call = lambda: self._inner.mark_compensated(key)  # noqa: E731
        await self._recorder.call("mark_compensated", call, key=key)


class RecordingStore:
    """Delegates to `inner`; writes and lease calls go through the recorder."""

    def __init__(self, inner: Any, history: History) -> None:
        self._inner = inner
        self.recorder = Recorder(history)
        self._compensations = RecordingCompensations(inner.compensations, self.recorder)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    @property
    def compensations(self) -> RecordingCompensations:
        return self._compensations

    async def append(self, envelope: PersistenceEnvelope, *, fence: int | None = None) -> None:
        fields = {
            "trace": envelope.trace_id,
            "step": envelope.step,
            "kind": envelope.outcome_kind.value,
            "exec": exec_of(envelope.payload),
            "fence": fence,
        }
        await self.recorder.call(
            "append", lambda: self._inner.append(envelope, fence=fence), **fields
        )

    async def resume(self, trace_id: str, from_step: int, *, fence: int | None = None) -> Any:
        call = lambda: self._inner.resume(trace_id, from_step, fence=fence)  # noqa: E731
        return await self.recorder.call("resume", call, trace=trace_id, step=from_step, fence=fence)

    async def complete(self, trace_id: str, state: Any, *, fence: int | None = None) -> None:
        call = lambda: self._inner.complete(trace_id, state, fence=fence)  # noqa: E731
        await self.recorder.call("complete", call, trace=trace_id, state=state.value, fence=fence)

    async def acquire_lease(self, trace_id: str, holder: str, ttl_ms: int, **kw: Any) -> Any:
        call = lambda: self._inner.acquire_lease(trace_id, holder, ttl_ms, **kw)  # noqa: E731
        return await self.recorder.call("acquire_lease", call, trace=trace_id)

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        call = lambda: self._inner.renew_lease(lease, ttl_ms)  # noqa: E731
        renewed: Lease = await self.recorder.call(
            "renew_lease", call, trace=lease.trace_id, fence=lease.token
        )
        return renewed

    async def release_lease(self, lease: Lease) -> bool:
        call = lambda: self._inner.release_lease(lease)  # noqa: E731
        return bool(
            await self.recorder.call("release_lease", call, trace=lease.trace_id, fence=lease.token)
        )
