"""The PostgreSQL adapter (`pip install 'ranvier[postgres]'`): asyncpg, group commit.

Modules, by role (the same names in every backend): `store` (the adapter), `sql`
(statements), `schema` (migrations), `rows` (row decoding), `connection` (the pool),
`batch` (group commit), `leases`, `compensation` (the compensation idempotency store).
"""

from ranvier.stores.postgres.compensation import PostgresCompensationIdempotencyStore
from ranvier.stores.postgres.store import PostgresPersistenceStore, from_url

__all__ = ["PostgresCompensationIdempotencyStore", "PostgresPersistenceStore", "from_url"]
