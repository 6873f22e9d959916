"""What one inspector process holds: the store, the pipelines, the guard, the action log."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from ranvier.inspect.audit import ActionLog
from ranvier.inspect.counts import STATUSES, StatusCounts
from ranvier.inspect.security import Guard
from ranvier.inspect.settings import InspectorSettings
from ranvier.runtime import App, Axon
from ranvier.stores.base import PersistenceStore

log = logging.getLogger("ranvier.inspect")
SHUTDOWN_GRACE_S = 30.0


@dataclass(slots=True)
class Inspector:
    """Shared by every request of one server; built by `create_app`."""

    settings: InspectorSettings
    store: PersistenceStore
    app: App | None
    guard: Guard
    actions: ActionLog
    counts: StatusCounts
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    @property
    def read_only(self) -> bool:
        return not self.settings.allow_actions

    def pipeline(self, circuit: str) -> Axon | None:
        """The pipeline of `circuit` from `--app`, if any."""
        if self.app is None:
            return None
        return next((a for a in self.app.pipelines if a.name == circuit), None)

    @property
    def circuits(self) -> list[str]:
        return [] if self.app is None else sorted(a.name for a in self.app.pipelines)

    def forget_counts(self) -> None:
        """After an action: the next page counts again."""
        self.counts.forget()

    @property
    def busy(self) -> bool:
        """A background run (resume, fork, compensation) is in progress."""
        return bool(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background (a resume, a fork); cancelled at shutdown."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        """Let background runs finish for `grace_s` seconds, then cancel them: the
        runtime completes a cancelled run as cancelled, as Ctrl+C on `ranvier resume`."""
        if not self._tasks:
            return
        log.warning("inspector: waiting up to %.0f s for %d run(s)", grace_s, len(self._tasks))
        _, pending = await asyncio.wait(set(self._tasks), timeout=grace_s)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("inspector: %d background run(s) cancelled at shutdown", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)

    async def idle(self) -> None:
        """Wait for every background run to end (tests)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)


def status_order() -> list[str]:
    return list(STATUSES)
