"""Compensation keys in Redis: one string key each, claimed with SET NX.

A claim never expires and is never purged (its hook may have died half-way: running it
again is an operator's decision); with `ttl_seconds`, a key expires that long after it
was marked compensated.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

from ranvier import rules
from ranvier.errors import InvalidInput
from ranvier.model import CompensationRecord, CompensationState
from ranvier.stores.redis import keys as k
from ranvier.stores.redis import scripts as lua
from ranvier.stores.redis.batch import AnyRedis, Script, ScriptRunner, translate
from ranvier.stores.redis.rows import compensation_from_value, compensation_value
from ranvier.stores.redis.scan import WALK_COMPENSATIONS, SortedPager, scan_all, walk

_CLAIM, _MARK = Script(lua.COMP_CLAIM), Script(lua.COMP_MARK)
_RELEASE, _PURGE = Script(lua.COMP_RELEASE), Script(lua.COMP_PURGE)
_IMPORT = Script(lua.COMP_IMPORT)
_SCAN_COUNT = 500


def ttl_arg(ttl_seconds: object) -> str:
    """The TTL as the scripts take it ('0': keys never expire)."""
    if ttl_seconds is None:
        return "0"
    if type(ttl_seconds) is not int or ttl_seconds <= 0:
        raise InvalidInput(f"ttl_seconds must be a positive int or None, got {ttl_seconds!r}")
    return str(ttl_seconds)


class RedisCompensationIdempotencyStore:
    """Compensation keys under `<prefix>:compensation:{<key>}`; with a TTL, a compensated
    key expires `ttl_seconds` after it was marked (a claim never expires)."""

    def __init__(
        self,
        client: AnyRedis,
        *,
        prefix: str = k.DEFAULT_PREFIX,
        ttl_seconds: int | None = None,
        runner: ScriptRunner | None = None,
    ) -> None:
        self._client = client
        self._prefix = k.validate_prefix(prefix)
        self._ttl = ttl_arg(ttl_seconds)
        self._runner = runner or ScriptRunner(client)
        self._pages = SortedPager()

    def _key(self, key: str) -> str:
        return k.compensation_key(self._prefix, rules.validate_id("compensation key", key))

    async def _run(self, script: Script, key: str, *args: str) -> Any:
        return await self._runner.run(script, (self._key(key),), args)

    async def claim(self, key: str) -> bool:
        return bool(await self._run(_CLAIM, key, uuid.uuid4().hex))

    async def mark_compensated(self, key: str) -> None:
        await self._run(_MARK, key, self._ttl)

    async def was_compensated(self, key: str) -> bool:
        record = await self.get(key)
        return record is not None and record.state is CompensationState.COMPENSATED

    async def get(self, key: str) -> CompensationRecord | None:
        full = self._key(key)
        with translate():
            value = await self._client.get(full)
        if value is None:
            return None
        return compensation_from_value(key, _raw(value))

    async def release(self, key: str) -> bool:
        return bool(await self._run(_RELEASE, key))

    async def list_unfinished(self, *, limit: int = 100) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        unfinished: list[CompensationRecord] = []
        pattern = k.compensation_pattern(self._prefix)
        async for keys in scan_all(self._client, pattern, _SCAN_COUNT):
            records = await self._records(keys)
            unfinished += [r for r in records if r.state is CompensationState.CLAIMED]
            unfinished.sort(key=lambda r: (r.claimed_at_ms, r.key))
            del unfinished[limit:]  # keeps memory bounded by `limit`
        return unfinished

    async def _records(self, full_keys: list[str]) -> list[CompensationRecord]:
        with translate():
            pipe = self._client.pipeline(transaction=False)
            for key in full_keys:
                pipe.get(key)
            values = await pipe.execute()
        return [
            compensation_from_value(k.compensation_key_name(key), value)
            for key, value in zip(full_keys, values, strict=True)
            if value is not None
        ]

    async def count_older_than_ms(self, cutoff_ms: int) -> int:
        return sum([n async for n, _ in self._old(cutoff_ms, "count")])

    async def purge_older_than_ms(self, cutoff_ms: int) -> int:
        purged = 0
        async for _, keys in self._old(cutoff_ms, "old"):
            calls = [self._runner.submit(_PURGE, (key,), (str(cutoff_ms),)) for key in keys]
            purged += sum(await asyncio.gather(*calls))
        return purged

    async def _old(self, cutoff_ms: int, mode: str) -> AsyncIterator[tuple[int, list[str]]]:
        """(count, keys) per walk step of the keys compensated before `cutoff_ms`."""
        rules.validate_step(cutoff_ms, what="cutoff_ms")
        pattern = k.compensation_pattern(self._prefix)
        args = (str(cutoff_ms), mode)
        async for count, keys in walk(self._runner, WALK_COMPENSATIONS, pattern, args):
            yield int(count), [key.decode() for key in keys]

    async def list_records(
        self, *, after: str | None = None, limit: int = 1000
    ) -> list[CompensationRecord]:
        rules.validate_positive("limit", limit, maximum=rules.MAX_PAGE_SIZE)
        if after is not None:
            rules.validate_id("after", after)
        return await self._pages.page(self._names, self._records_of, after, limit)

    async def _names(self) -> AsyncIterator[list[str]]:
        pattern = k.compensation_pattern(self._prefix)
        async for keys in scan_all(self._client, pattern, 5000):
            yield [k.compensation_key_name(key) for key in keys]

    async def _records_of(self, names: list[str]) -> list[CompensationRecord]:
        return await self._records([k.compensation_key(self._prefix, n) for n in names])

    async def import_record(self, record: CompensationRecord) -> bool:
        full = self._key(rules.validate_record(record).key)
        with translate():
            value = await self._client.get(full)
        current = None if value is None else _raw(value)
        while True:
            existing = None if current is None else compensation_from_value(record.key, current)
            merged = rules.merged_record(existing, record)
            if merged is None:
                return False
            args = (current or b"", compensation_value(merged), self._ttl)
            done, seen = await self._runner.run(_IMPORT, (full,), args)
            if done:
                return True
            current = seen or None  # changed meanwhile: decide again on what is there


def _raw(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()
