"""The statements operators and backups use: counts, purge, delete, restore, describe."""

from __future__ import annotations

from ranvier.stores.postgres.sql.names import cutoff, ts

# --- counts (run with seq scans allowed: they read whole tables) ---------------------

COUNT_BY_STATUS = """
SELECT coalesce(completion, 'unfinished') AS status, count(*) AS n FROM {state} GROUP BY 1
UNION ALL  -- the unfinished traces with a live lease (few: one per run in flight)
SELECT 'running', count(*) FROM {leases} l JOIN {state} s ON s.trace_id = l.trace_id
WHERE l.holder IS NOT NULL AND l.expires_at > now() AND s.completion IS NULL
"""
"""Traces per completion, and how many unfinished ones run (the others are interrupted),
as `list_traces` decides: one statement, one snapshot."""

COUNT_COMPLETED_BEFORE = f"""
SELECT count(*) FROM {{state}} WHERE completion IS NOT NULL AND completed_at < {cutoff("$1")}
"""

# --- deletes ----------------------------------------------------------------------

PURGE_BATCH = f"""
WITH doomed AS (
    SELECT trace_id FROM {{state}}
    WHERE completion IS NOT NULL AND completed_at < {cutoff("$1")}
    ORDER BY completed_at LIMIT $2
    FOR UPDATE SKIP LOCKED
), e AS (
    DELETE FROM {{events}} WHERE trace_id IN (SELECT trace_id FROM doomed)
), l AS (
    DELETE FROM {{leases}} WHERE trace_id IN (SELECT trace_id FROM doomed)
), s AS (  -- interventions go with their state row (ON DELETE CASCADE)
    DELETE FROM {{state}} WHERE trace_id IN (SELECT trace_id FROM doomed) RETURNING 1
)
SELECT count(*) FROM s
"""

DELETE_TRACE = """
WITH e AS (
    DELETE FROM {events} WHERE trace_id = $1
), l AS (
    DELETE FROM {leases} WHERE trace_id = $1
), s AS (
    DELETE FROM {state} WHERE trace_id = $1 RETURNING 1
)
SELECT count(*) FROM s
"""

# --- restore ----------------------------------------------------------------------

IMPORT_STATE = f"""
INSERT INTO {{state}} (trace_id, circuit, schematic_version, resumed_from_step, epoch,
                       completion, created_at, updated_at, completed_at, input, attempts,
                       forked_from, forked_at_step)
VALUES ($1, $2, $3, $4, $5, $6, {ts("$7")}, {ts("$8")}, {ts("$9")}, $10::json, $11, $12, $13)
ON CONFLICT (trace_id) DO NOTHING
RETURNING 1
"""

IMPORT_EVENTS = """
INSERT INTO {events} (trace_id, generation, step, schematic_version, outcome_kind, node_id,
                      timestamp_ms, payload_hash, payload)
SELECT $1, * FROM unnest($2::int[], $3::bigint[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $8::text[], $9::json[])
"""

IMPORT_INTERVENTIONS = """
INSERT INTO {interventions} (trace_id, seq, target_node, timestamp_ms, payload_override)
SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::json[])
"""


# --- describe (read-only: the catalog and settings, never a table of ours that may be missing)

DESCRIBE = """
SELECT current_setting('synchronous_commit') AS synchronous_commit,
       current_setting('max_connections')::int AS max_connections,
       current_setting('server_version') AS server_version,
       current_user AS user_name, current_database() AS database,
       host(inet_server_addr()) AS host, inet_server_port() AS port,
       to_regclass('{schema_version}') IS NOT NULL AS versioned,
       (SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass('{events}')) AS partitions
"""

STORED_VERSION = "SELECT max(version) FROM {schema_version}"
