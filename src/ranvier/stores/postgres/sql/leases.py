"""The statements of leases and of their fencing tokens (the token survives release, so
it only ever grows)."""

from __future__ import annotations

from ranvier.stores.postgres.sql.names import NOW, ms

ACQUIRE_LEASE = f"""
WITH cur AS (  -- the trace's state row first: every statement locks state rows, then leases
    SELECT 1 FROM {{state}} s WHERE s.trace_id = $1 FOR NO KEY UPDATE
), taken AS (
    INSERT INTO {{leases}} AS l (trace_id, holder, token, expires_at)
    SELECT $1, $2, 1, {NOW} + $3::bigint * interval '1 millisecond'
    WHERE (SELECT count(*) FROM cur) >= 0  -- an InitPlan: cur runs first, to its end
    ON CONFLICT (trace_id) DO UPDATE
        SET holder = excluded.holder, token = l.token + 1, expires_at = excluded.expires_at
        WHERE l.holder IS NULL OR l.expires_at <= now()
    RETURNING l.token, l.expires_at
), started AS (  -- with a start ($4 .. $6): its trace created, or a stored one's attempt
    INSERT INTO {{state}} AS s (trace_id, circuit, schematic_version, input, attempts,
                               created_at, updated_at)
    SELECT $1, $4, $5, $6::json, 1, {NOW}, {NOW} FROM taken WHERE $4::text IS NOT NULL
    ON CONFLICT (trace_id) DO UPDATE SET attempts = s.attempts + 1
        WHERE s.completion IS NULL
), resumed AS (  -- without one: the attempt of a stored, unfinished trace
    UPDATE {{state}} s SET attempts = s.attempts + 1
    WHERE s.trace_id = $1 AND s.completion IS NULL AND $4::text IS NULL
      AND EXISTS (SELECT FROM taken)
)
SELECT token, {ms("expires_at")} AS expires_at_ms FROM taken
"""
"""`acquire_lease` in one statement: the lease taken if free or expired and, only then,
the attempt counted and a start's trace created (`PersistenceStore.acquire_lease`). No
row comes back when another holder's lease is live, and nothing is written."""

ACQUIRE_LEASE_BATCH = f"""
WITH inp AS (  -- $1: a JSON array of objects, one per call (`postgres.leases.document`)
    SELECT i.t AS trace_id, i.h AS holder, i.ttl, i.c AS circuit, i.v AS schematic_version,
           i.p AS input
    FROM json_to_recordset($1::json) AS i(t text, h text, ttl bigint, c text, v text, p json)
), cur AS (  -- the stored traces' rows first and in key order, as every batch locks them
    -- (state rows, then lease rows): batches cannot deadlock
    SELECT s.trace_id FROM {{state}} s
    WHERE s.trace_id = ANY(ARRAY(SELECT trace_id FROM inp))  -- index lookups, any estimate
    ORDER BY s.trace_id FOR NO KEY UPDATE
), taken AS (
    INSERT INTO {{leases}} AS l (trace_id, holder, token, expires_at)
    SELECT trace_id, holder, 1, {NOW} + ttl * interval '1 millisecond' FROM inp
    WHERE (SELECT count(*) FROM cur) >= 0  -- an InitPlan: cur runs first, to its end
    ORDER BY trace_id
    ON CONFLICT (trace_id) DO UPDATE
        SET holder = excluded.holder, token = l.token + 1, expires_at = excluded.expires_at
        WHERE l.holder IS NULL OR l.expires_at <= now()
    RETURNING l.trace_id, l.token, l.expires_at
), started AS (  -- the calls with a start whose lease was taken, as in ACQUIRE_LEASE
    INSERT INTO {{state}} AS s (trace_id, circuit, schematic_version, input, attempts,
                               created_at, updated_at)
    SELECT trace_id, circuit, schematic_version, input, 1, {NOW}, {NOW} FROM inp
    WHERE circuit IS NOT NULL AND trace_id IN (SELECT trace_id FROM taken)
    ORDER BY trace_id
    ON CONFLICT (trace_id) DO UPDATE SET attempts = s.attempts + 1
        WHERE s.completion IS NULL
), resumed AS (  -- and those without one
    UPDATE {{state}} s SET attempts = s.attempts + 1
    WHERE s.trace_id = ANY(ARRAY(SELECT trace_id FROM inp WHERE circuit IS NULL
                                 AND trace_id IN (SELECT trace_id FROM taken)))
      AND s.completion IS NULL
)
SELECT trace_id, token, {ms("expires_at")} AS expires_at_ms FROM taken
"""
"""ACQUIRE_LEASE for a batch of calls from concurrent runs (one per trace), one commit for
all; a row comes back for each lease acquired, none for a lease someone else holds."""

RENEW_LEASE = f"""
WITH renewed AS (
    UPDATE {{leases}} SET expires_at = {NOW} + $3::bigint * interval '1 millisecond'
    WHERE trace_id = $1 AND token = $2 AND holder IS NOT NULL AND expires_at > now()
    RETURNING expires_at
)
SELECT (SELECT {ms("expires_at")} FROM renewed) AS renewed_ms,
       l.token, {ms("l.expires_at")} AS expires_at_ms, {ms("now()")} AS now_ms
FROM (SELECT 1) one LEFT JOIN {{leases}} l ON l.trace_id = $1
"""

RELEASE_LEASE = """
WITH old AS (
    SELECT expires_at > now() AS live FROM {leases}
    WHERE trace_id = $1 AND token = $2 AND holder IS NOT NULL
    FOR UPDATE
), released AS (
    UPDATE {leases} SET holder = NULL, expires_at = timestamptz 'epoch'
    WHERE trace_id = $1 AND token = $2 AND holder IS NOT NULL
)
SELECT live FROM old
"""

GET_LEASE = f"""
SELECT holder, token, {ms("expires_at")} AS expires_at_ms FROM {{leases}}
WHERE trace_id = $1 AND holder IS NOT NULL AND expires_at > now()
"""


LIST_LEASE_TOKENS = """
SELECT trace_id, token FROM {leases} WHERE trace_id > $1 ORDER BY trace_id LIMIT $2
"""

RAISE_LEASE_TOKEN = """
INSERT INTO {leases} AS l (trace_id, holder, token, expires_at)
VALUES ($1, NULL, $2, timestamptz 'epoch')
ON CONFLICT (trace_id) DO UPDATE
    SET holder = NULL, token = excluded.token, expires_at = excluded.expires_at
    WHERE l.token < excluded.token
"""
"""A restored token: the lease row takes it if it is higher, freed (a live lease under a
lower token is lost), so that the next acquisition gets a token above it. It locks the
lease row alone, so it cannot join a lock cycle with the state-then-lease statements."""
