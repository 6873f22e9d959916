"""The Redis adapter (`pip install 'ranvier[redis]'`): standalone and cluster, Lua.

Modules, by role (the same names in every backend): `store` (the adapter), `keys` (key
shapes), `schema` (the version marker, `describe`), `scripts` (the Lua), `rows` (hash
decoding), `connection` (URLs, waiting pools), `batch` (pipelined calls), `scan`
(listing, counting and purging), `leases`, `compensation` (the compensation idempotency
store).
"""

from ranvier.stores.redis.compensation import RedisCompensationIdempotencyStore
from ranvier.stores.redis.store import RedisPersistenceStore, from_url

__all__ = ["RedisCompensationIdempotencyStore", "RedisPersistenceStore", "from_url"]
