"""`App`: what a worker process needs to drive traces, for `--app` and `recover`.

A trace may be resumed by any process (`ranvier recover`, `ranvier resume`, a worker
started after a crash), so everything a run needs must be available there too: the
pipelines (each with its compensation hook) and the resources its steps use. An `App`
names both; `ranvier ... --app module:attribute` imports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from ranvier.errors import InvalidInput
from ranvier.runtime.axon import Axon

Resources = Mapping[str, Any]
ResourceFactory = Callable[[], AbstractAsyncContextManager[Resources]]
"""A zero-argument callable returning an async context manager that yields the
resources (e.g. an `@asynccontextmanager` that opens a client pool and closes it)."""


@dataclass(frozen=True, slots=True)
class App:
    """The pipelines a worker drives and the resources their steps and hooks get.

    `resources` is a mapping, or a `ResourceFactory` entered once per command (so pools
    are opened inside the running event loop and closed at the end).
    """

    pipelines: Sequence[Axon]
    resources: Resources | ResourceFactory | None = None

    def __post_init__(self) -> None:
        for axon in self.pipelines:
            if not isinstance(axon, Axon):
                raise InvalidInput(f"App pipelines must be Axons, got {axon!r}")
        if not self.pipelines:
            raise InvalidInput("an App needs at least one pipeline (Axon)")

    @asynccontextmanager
    async def open_resources(self) -> AsyncIterator[Resources]:
        """The resources, opened for the duration of the block."""
        resources = self.resources
        if resources is None:
            yield {}
        elif isinstance(resources, Mapping):
            yield resources
        else:
            async with resources() as opened:
                if not isinstance(opened, Mapping):
                    raise InvalidInput(
                        f"the App's resources factory yielded {type(opened).__name__}, "
                        "not a mapping of names to resources"
                    )
                yield opened
