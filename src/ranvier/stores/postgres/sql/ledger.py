"""The statements of the compensation ledger (`<prefix>_compensation_idempotency`)."""

from __future__ import annotations

from ranvier.stores.postgres.sql.names import NOW, cutoff, ms, ts

_RECORD = f"""idempotency_key, state, {ms("claimed_at")} AS claimed_at_ms,
       {ms("compensated_at")} AS compensated_at_ms"""

CLAIM = f"""
INSERT INTO {{compensations}} (idempotency_key, state, claimed_at)
VALUES ($1, 'claimed', {NOW})
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING 1
"""

MARK_COMPENSATED = f"""
INSERT INTO {{compensations}} AS c (idempotency_key, state, claimed_at, compensated_at)
VALUES ($1, 'compensated', {NOW}, {NOW})
ON CONFLICT (idempotency_key) DO UPDATE
    SET state = 'compensated', compensated_at = excluded.compensated_at
    WHERE c.state <> 'compensated'
"""

GET_COMPENSATION = f"SELECT {_RECORD} FROM {{compensations}} WHERE idempotency_key = $1"

RELEASE_COMPENSATION = """
DELETE FROM {compensations} WHERE idempotency_key = $1 AND state = 'claimed' RETURNING 1
"""

LIST_UNFINISHED = f"""
SELECT {_RECORD} FROM {{compensations}} WHERE state = 'claimed'
ORDER BY claimed_at, idempotency_key LIMIT $1
"""

LIST_RECORDS = f"""
SELECT {_RECORD} FROM {{compensations}} WHERE idempotency_key > $1
ORDER BY idempotency_key LIMIT $2
"""

IMPORT_RECORD = f"""
INSERT INTO {{compensations}} AS c (idempotency_key, state, claimed_at, compensated_at)
VALUES ($1, $2, {ts("$3")}, {ts("$4")})
ON CONFLICT (idempotency_key) DO UPDATE
    SET state = excluded.state, claimed_at = excluded.claimed_at,
        compensated_at = excluded.compensated_at
    WHERE c.state = 'claimed' AND excluded.state = 'compensated'
RETURNING 1
"""
"""A backed-up record, once `rules.merged_record` chose to write it. The WHERE is that
rule again, for a key another process wrote since it was read: an existing record only
ever moves from claimed to compensated."""

_FINISHED_BEFORE = f"state = 'compensated' AND compensated_at < {cutoff('$1')}"
"""What the ledger's retention deletes: never a claim whose hook did not finish (its
hook could run a second time)."""

COUNT_COMPENSATIONS = f"SELECT count(*) FROM {{compensations}} WHERE {_FINISHED_BEFORE}"

PURGE_COMPENSATIONS = f"""
WITH doomed AS (
    SELECT idempotency_key FROM {{compensations}} WHERE {_FINISHED_BEFORE}
    LIMIT $2 FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM {{compensations}} WHERE idempotency_key IN (SELECT idempotency_key FROM doomed)
    RETURNING 1
)
SELECT count(*) FROM d
"""
