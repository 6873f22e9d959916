"""The Redis store's leases: fencing tokens that only grow, taken and checked by one
script on the trace's slot, and listed and raised for backups.

A mixin of `RedisPersistenceStore` (the same object: no extra call on the hot path).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ranvier import rules
from ranvier.model import Lease, LeaseToken, TraceStart
from ranvier.stores.redis import keys as k
from ranvier.stores.redis import scripts as lua
from ranvier.stores.redis.batch import AnyRedis, Script, ScriptRunner
from ranvier.stores.redis.scan import SortedPager, scan_all

ACQUIRE, _RENEW = Script(lua.LEASE_ACQUIRE), Script(lua.LEASE_RENEW)
_RELEASE, GET_LEASE = Script(lua.LEASE_RELEASE), Script(lua.LEASE_GET)
_RAISE = Script(lua.LEASE_RAISE)


def request_id() -> str:
    return uuid.uuid4().hex


def _opt_int(value: bytes | None) -> int | None:
    return None if not value else int(value)


class RedisLeases:
    _client: AnyRedis
    _prefix: str
    _ttl: str
    _max_payload_bytes: int
    _runner: ScriptRunner
    _token_pages: SortedPager

    if TYPE_CHECKING:

        async def _run(self, script: Script, trace_id: str, args: Sequence[str | bytes]) -> Any: ...

        def _refused(
            self, trace_id: str, reply: list[Any], *, fence: int | None = None
        ) -> None: ...

    async def acquire_lease(
        self, trace_id: str, holder: str, ttl_ms: int, *, start: TraceStart | None = None
    ) -> Lease | None:
        ttl_ms = rules.validate_lease_request(trace_id, holder, ttl_ms)
        args: tuple[str | bytes, ...] = (holder, str(ttl_ms), request_id(), self._ttl)
        if start is not None:  # validated before anything is sent: bad input takes nothing
            begin = rules.prepare_start(start, max_payload_bytes=self._max_payload_bytes)
            s = begin.start
            args += (trace_id, s.circuit, s.schematic_version, begin.input_json or b"")
        reply = await self._run(ACQUIRE, trace_id, args)
        if reply is None:
            return None
        token, expires = reply
        return Lease(trace_id=trace_id, holder=holder, token=int(token), expires_at_ms=int(expires))

    async def renew_lease(self, lease: Lease, ttl_ms: int) -> Lease:
        ttl_ms = rules.validate_lease_request(lease.trace_id, lease.holder, ttl_ms)
        args = (str(lease.token), str(ttl_ms), self._ttl)
        reply = await self._run(_RENEW, lease.trace_id, args)
        if reply[0] != b"ok":
            self._refused(lease.trace_id, reply, fence=lease.token)
        return replace(lease, expires_at_ms=int(reply[1]))

    async def release_lease(self, lease: Lease) -> bool:
        rules.validate_id("trace_id", lease.trace_id)
        args = (str(lease.token), request_id())
        return bool(await self._run(_RELEASE, lease.trace_id, args))

    async def get_lease(self, trace_id: str) -> Lease | None:
        rules.validate_id("trace_id", trace_id)
        holder, token, expires, now = await self._run(GET_LEASE, trace_id, ())
        if not holder or not rules.lease_is_live(_opt_int(expires), int(now)):
            return None
        return Lease(
            trace_id=trace_id, holder=holder.decode(), token=int(token), expires_at_ms=int(expires)
        )

    async def list_lease_tokens(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[LeaseToken]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        if after is not None:
            rules.validate_id("after", after)
        return await self._token_pages.page(self._leased, self._tokens, after, limit)

    async def _leased(self) -> AsyncIterator[list[str]]:
        async for keys in scan_all(self._client, k.lease_pattern(self._prefix), 5000):
            yield [k.trace_id_of_key(key) for key in keys]

    async def _tokens(self, trace_ids: list[str]) -> list[LeaseToken]:
        """The tokens as they are now (one pipelined batch), leaving out vanished leases."""
        keys = [k.trace_keys(self._prefix, t) for t in trace_ids]
        replies = await asyncio.gather(*(self._runner.submit(GET_LEASE, ks, ()) for ks in keys))
        return [
            LeaseToken(trace_id=t, token=int(reply[1]))
            for t, reply in zip(trace_ids, replies, strict=True)
            if reply[1]
        ]

    async def raise_lease_token(self, trace_id: str, token: int) -> None:
        rules.validate_token(LeaseToken(trace_id=trace_id, token=token))
        await self._run(_RAISE, trace_id, (str(token), self._ttl))
