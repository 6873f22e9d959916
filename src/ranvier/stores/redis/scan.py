"""Walking every key of a pattern with SCAN (on each primary of a cluster), never KEYS.

`list_traces` pages are resumable: the opaque cursor holds the node index, that node's
SCAN cursor and the keys of the current SCAN batch not yet looked at, so a page can end
in the middle of a batch without losing or repeating a trace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio.cluster import ClusterNode, RedisCluster

from ranvier import rules
from ranvier.errors import InvalidInput
from ranvier.stores.redis.batch import AnyRedis, translate

SCAN_COUNT = 500


def primaries(client: AnyRedis) -> list[ClusterNode | None]:
    """The nodes to scan: each primary of a cluster (stable order), else the one server."""
    if isinstance(client, RedisCluster):
        ordered = sorted(client.get_primaries(), key=_node_name)
        return [*ordered]
    return [None]


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
    for node in primaries(client):
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
