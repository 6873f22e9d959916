"""The PostgreSQL adapter (`pip install 'ranvier[postgres]'`): asyncpg, group commit.

Modules, by role (the same names in every backend): `store` (the adapter), `sql`
(statements, by concept), `schema` (migrations), `catalog` (what the database holds:
table checks, `describe`), `rows` (row decoding), `connection` (the pool and the one
place driver errors are translated), `batch` (group commit) and `writes` (its flushes),
`leases`, `maintenance` (counts, purge, restore), `compensation` (the compensation
idempotency store).
"""

from ranvier.stores.postgres.compensation import PostgresCompensationIdempotencyStore
from ranvier.stores.postgres.store import PostgresPersistenceStore, from_url

__all__ = ["PostgresCompensationIdempotencyStore", "PostgresPersistenceStore", "from_url"]
