"""The SQLite adapter (the default store): one file, WAL, one writer thread.

Modules, by role (the same names in every backend): `store` (the adapter), `sql`
(statements), `schema` (migrations), `rows` (reads), `writes` (the writes the writer
runs), `connection`, `writer` and `batch` (the writer thread and its transactions),
`compensation` (the compensation idempotency store).
"""

from ranvier.stores.sqlite.compensation import SqliteCompensationIdempotencyStore
from ranvier.stores.sqlite.store import SqlitePersistenceStore, from_url, path_of_url

__all__ = [
    "SqliteCompensationIdempotencyStore",
    "SqlitePersistenceStore",
    "from_url",
    "path_of_url",
]
