"""Walking every key of a pattern with SCAN (on each primary of a cluster), never KEYS.

`list_traces` pages are resumable: the opaque cursor holds the node index, that node's
SCAN cursor and the keys of the current SCAN batch not yet looked at, so a page can end
in the middle of a batch without losing or repeating a trace.

Counts and purges walk in the server: each call of a walk script runs one SCAN step
there and returns only tallies (or the keys to purge), so a count never ships traces to
Python and no call blocks the server for long. SCAN may return a key twice when the
keyspace shrinks during the walk (a concurrent purge): a count is then an upper bound;
a purge stays exact (its per-trace script re-checks and deletes once).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
from redis.asyncio.cluster import ClusterNode, RedisCluster

from ranvier import rules
from ranvier.errors import InvalidInput
from ranvier.stores.redis.batch import AnyRedis, Script, ScriptRunner, translate
from ranvier.stores.redis.scripts import LT

SCAN_COUNT = 500
WALK_COUNT = 2000
"""Keys a walk script looks at per call: a few ms of server time."""
_T = TypeVar("_T")

# ARGV: SCAN cursor, pattern of state keys, count, cutoff ('' = none), mode ('count':
# tallies by status and completed before the cutoff; 'old': those traces' keys and times)
WALK_TRACES = Script(
    LT
    + r"""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local c = {running = 0, interrupted = 0}
local before, old = 0, {}
for _, key in ipairs(r[2]) do
  local s = redis.call('HMGET', key, 'completion', 'completed')
  if s[1] then
    if s[2] and ARGV[4] ~= '' and lt(s[2], ARGV[4]) then
      before = before + 1
      if ARGV[5] == 'old' then old[#old + 1] = key; old[#old + 1] = s[2] end
    end
    c[s[1]] = (c[s[1]] or 0) + 1
  elseif ARGV[5] == 'count' then
    local exp = redis.call('HGET', string.sub(key, 1, -6) .. 'lease', 'exp')
    if exp and tonumber(exp) > now then c.running = c.running + 1
    else c.interrupted = c.interrupted + 1 end
  end
end
local tally = {}
for status, n in pairs(c) do tally[#tally + 1] = status; tally[#tally + 1] = n end
return {r[1], tally, before, old}
"""
)

# ARGV: SCAN cursor, pattern of compensation keys, count, cutoff, mode ('count' | 'old'):
# keys compensated before the cutoff (a claim never counts)
WALK_COMPENSATIONS = Script(
    LT
    + r"""
local r = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local n, old = 0, {}
for _, key in ipairs(r[2]) do
  local done = string.match(redis.call('GET', key) or '', '^compensated%z%d+%z(%d+)%z')
  if done and lt(done, ARGV[4]) then
    n = n + 1
    if ARGV[5] == 'old' then old[#old + 1] = key end
  end
end
return {r[1], n, old}
"""
)


def primaries(client: AnyRedis) -> list[ClusterNode | None]:
    """The nodes to scan: each primary of a cluster (stable order), else the one server."""
    if isinstance(client, RedisCluster):
        ordered = sorted(client.get_primaries(), key=_node_name)
        return [*ordered]
    return [None]


async def nodes_of(client: AnyRedis) -> list[ClusterNode | None]:
    """`primaries`, once a cluster client that never ran a command has found them."""
    if isinstance(client, RedisCluster) and not client.get_primaries():
        with translate():
            await client.initialize()
    return primaries(client)


def _node_name(node: ClusterNode) -> str:
    return str(node.name)


async def scan_once(
    client: AnyRedis, node: ClusterNode | None, cursor: int, pattern: str, count: int
) -> tuple[int, list[str]]:
    with translate():
        if node is None:
            reply: Any = await client.execute_command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", count
            )
        else:
            reply = await client.execute_command(
                "SCAN", cursor, "MATCH", pattern, "COUNT", count, target_nodes=node
            )
    next_cursor, keys = reply
    if isinstance(next_cursor, dict):  # the cluster client keys cursors by node name
        (next_cursor,) = next_cursor.values()
    return int(next_cursor), [k.decode() if isinstance(k, bytes) else k for k in keys]


async def scan_all(client: AnyRedis, pattern: str, count: int) -> AsyncIterator[list[str]]:
    """Every key matching `pattern`, one SCAN batch at a time."""
    for node in await nodes_of(client):
        cursor = 0
        while True:
            cursor, keys = await scan_once(client, node, cursor, pattern, count)
            if keys:
                yield keys
            if cursor == 0:
                break


@dataclass(slots=True)
class ScanPosition:
    """Where a paged walk stands; `pending` are keys of a SCAN batch not yet used."""

    node: int = 0
    cursor: int = 0
    pending: list[str] = field(default_factory=list)

    def encode(self) -> str:
        return rules.encode_cursor(orjson.dumps([self.node, self.cursor, self.pending]).decode())

    @classmethod
    def decode(cls, text: str | None, cursor: str | None) -> ScanPosition:
        """From a cursor already decoded by `rules.validate_list_query` (`text`)."""
        if text is None:
            return cls()
        try:
            node, scan_cursor, pending = orjson.loads(text)
            if not all(isinstance(k, str) for k in pending):
                raise TypeError
            return cls(int(node), int(scan_cursor), list(pending))
        except (ValueError, TypeError):
            raise InvalidInput(
                f"cursor {cursor!r} is not one this store handed out; pass next_cursor as is"
            ) from None

    async def refill(self, client: AnyRedis, nodes: list[ClusterNode | None], pattern: str) -> bool:
        """Fetch the next SCAN batch into `pending`; False once every node is done."""
        while not self.pending:
            if self.node >= len(nodes):
                return False
            self.cursor, self.pending = await scan_once(
                client, nodes[self.node], self.cursor, pattern, SCAN_COUNT
            )
            if self.cursor == 0:
                self.node += 1
        return True

    def done(self, nodes: int) -> bool:
        return not self.pending and self.node >= nodes


CompletedStep = tuple[int, list[tuple[int, str]]]
"""Per walk step: how many traces completed before the cutoff, and (mode 'old') their
(completed_at, state key)."""


async def completed_before(
    runner: ScriptRunner, pattern: str, cutoff_ms: int, mode: str
) -> AsyncIterator[CompletedStep]:
    async for _, before, old in walk(runner, WALK_TRACES, pattern, (str(cutoff_ms), mode)):
        pairs = zip(old[::2], old[1::2], strict=True)
        yield int(before), [(int(done), key.decode()) for key, done in pairs]


async def status_tallies(runner: ScriptRunner, pattern: str) -> AsyncIterator[tuple[str, int]]:
    """(running | interrupted | a completion state, how many), per walk step."""
    async for tally, _, _ in walk(runner, WALK_TRACES, pattern, ("", "count")):
        for name, n in zip(tally[::2], tally[1::2], strict=True):
            yield name.decode(), int(n)


async def earliest(found: AsyncIterator[CompletedStep], limit: int) -> list[tuple[int, str]]:
    """The `limit` earliest completed of the walk, earliest first (a duplicate from SCAN
    counted once); memory bounded by `limit`."""
    heap: list[tuple[int, str]] = []  # a max-heap by negated time
    kept: set[str] = set()
    async for _, old in found:
        for completed, key in old:
            if key not in kept:
                kept.add(key)
                heapq.heappush(heap, (-completed, key))
                if len(heap) > limit:
                    kept.discard(heapq.heappop(heap)[1])
    return sorted((-negated, key) for negated, key in heap)


async def walk(
    runner: ScriptRunner, script: Script, pattern: str, args: tuple[str, ...]
) -> AsyncIterator[list[Any]]:
    """The replies of `script` over the whole keyspace, one SCAN step per call, each
    reply without its cursor; a cluster's primaries are walked at once."""
    nodes = await nodes_of(runner.client)
    if len(nodes) == 1:
        async for reply in _walk_node(runner, script, nodes[0], pattern, args):
            yield reply
        return
    queue: asyncio.Queue[list[Any] | Exception | None] = asyncio.Queue(2 * len(nodes))

    async def feed(node: ClusterNode | None) -> None:
        try:
            async for reply in _walk_node(runner, script, node, pattern, args):
                await queue.put(reply)
            await queue.put(None)
        except Exception as exc:
            await queue.put(exc)

    tasks = [asyncio.ensure_future(feed(node)) for node in nodes]
    try:
        finished = 0
        while finished < len(nodes):
            item = await queue.get()
            if isinstance(item, Exception):
                raise item
            if item is None:
                finished += 1
            else:
                yield item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _walk_node(
    runner: ScriptRunner,
    script: Script,
    node: ClusterNode | None,
    pattern: str,
    args: tuple[str, ...],
) -> AsyncIterator[list[Any]]:
    cursor: Any = b"0"
    while True:
        cursor, *rest = await runner.on_node(script, node, (cursor, pattern, WALK_COUNT, *args))
        yield rest
        if cursor in (b"0", 0, "0"):
            return


class SortedPager:
    """Pages in name order of a key set that has no ordered index (lease tokens, the
    compensation ledger): a walk keeps the `window` smallest names after `after`, and the
    pages that follow are cut from them, so a caller paging through walks once per
    window instead of once per page. Values are read when a page is served."""

    def __init__(self, window: int = 50_000) -> None:
        self._window = window
        self._after: str | None = None
        """The last name served (or the walk's start): a page after it continues here."""
        self._names: list[str] = []
        self._whole = True

    async def page(
        self,
        names: Callable[[], AsyncIterator[list[str]]],
        read: Callable[[list[str]], Awaitable[list[_T]]],
        after: str | None,
        limit: int,
    ) -> list[_T]:
        """Up to `limit` items of the names after `after`: `names` walks them all,
        `read` fetches the values of some (leaving out those deleted meanwhile)."""
        if after is None or after != self._after:
            await self._collect(names(), after)
        items: list[_T] = []
        while (wanted := limit - len(items)) > 0:
            if len(self._names) < wanted and not self._whole:
                await self._collect(names(), self._after)
            chunk, self._names = self._names[:wanted], self._names[wanted:]
            if not chunk:
                break
            self._after = chunk[-1]
            items += await read(chunk)
        return items

    async def _collect(self, walk: AsyncIterator[list[str]], after: str | None) -> None:
        kept: list[str] = []
        whole = True
        async for batch in walk:
            kept += [n for n in batch if after is None or n > after]
            if len(kept) > 2 * self._window:  # sort now and then: memory stays bounded
                kept, whole = sorted(set(kept))[: self._window], False
        kept = sorted(set(kept))
        if len(kept) > self._window:
            kept, whole = kept[: self._window], False
        self._names, self._whole, self._after = kept, whole, after
