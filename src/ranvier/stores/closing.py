"""`async with store:` for every adapter: one definition instead of four."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class ClosesOnExit:
    """Makes a store an async context manager that closes it on exit."""

    __slots__ = ()

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
