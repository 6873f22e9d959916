"""Every SQL statement of the PostgreSQL adapter, as named templates.

Table names are filled in from a table prefix that `validate_prefix` has checked to be
a plain lowercase SQL identifier; values always travel as parameters. Times are the
server's `now()` truncated to milliseconds, so that `*_ms` values read back exactly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

from ranvier.errors import InvalidInput

DEFAULT_PREFIX = "ranvier_persistence"
_PREFIX_RE = re.compile(r"[a-z_][a-z0-9_]*")
MAX_PREFIX_LENGTH = 63 - len("_compensation_idempotency")
"""PostgreSQL truncates identifiers at 63 bytes; the longest table suffix must fit."""


def validate_prefix(prefix: object) -> str:
    """A lowercase SQL identifier short enough for every table name, else `InvalidInput`."""
    if type(prefix) is not str or not _PREFIX_RE.fullmatch(prefix):
        raise InvalidInput(
            f"table prefix {prefix!r} is not a plain SQL identifier; use lowercase letters, "
            "digits and underscores, starting with a letter or underscore"
        )
    if len(prefix) > MAX_PREFIX_LENGTH:
        raise InvalidInput(
            f"table prefix {prefix!r} is {len(prefix)} characters; use at most {MAX_PREFIX_LENGTH}"
        )
    return prefix


NOW = "date_trunc('milliseconds', now())"


def ms(expr: str) -> str:
    """SQL for a timestamptz expression as unix milliseconds, truncated like NOW (a cast
    alone would round: `now_ms()` could then read 1 ms past a time NOW records after)."""
    return f"floor(extract(epoch FROM {expr}) * 1000)::bigint"


def ts(param: str) -> str:
    """SQL for a unix-millisecond parameter as timestamptz."""
    return f"(timestamptz 'epoch' + {param}::bigint * interval '1 millisecond')"


# --- append (one statement for one envelope or a whole group-commit batch) --------

APPEND = f"""
WITH inp AS (  -- $1: a JSON array of objects, one per envelope (`postgres_rows.append_document`)
    SELECT i.t AS trace_id, i.c AS circuit, i.v AS schematic_version, i.s AS step,
           i.k AS outcome_kind, i.n AS node_id, i.ts AS timestamp_ms, i.h AS payload_hash,
           i.p AS payload, i.f AS fence, i.x AS idx
    FROM json_to_recordset($1::json) AS i(t text, c text, v text, s int, k text, n text,
                                          ts bigint, h text, p json, f bigint, x int)
), cur AS (  -- FOR SHARE: complete/resume (FOR NO KEY UPDATE) wait for this write or it
    -- waits for theirs and sees their result; appends do not block each other
    SELECT s.trace_id, s.circuit, s.completion FROM {{state}} s
    WHERE s.trace_id = ANY(ARRAY(SELECT trace_id FROM inp))  -- index lookups, any estimate
    ORDER BY s.trace_id FOR SHARE
), lease AS (
    SELECT l.trace_id, l.token, l.expires_at FROM {{leases}} l
    WHERE l.trace_id = ANY($2::text[])  -- the traces whose envelope carries a fence
    ORDER BY l.trace_id FOR SHARE
), chk AS (  -- one row per envelope (a batch holds one per trace): its trace and checks
    SELECT inp.*, cur.trace_id IS NOT NULL AS found, cur.circuit AS cur_circuit,
           cur.completion, lease.token, lease.expires_at,
           (inp.fence IS NULL OR (lease.token = inp.fence AND lease.expires_at > now()))
           AND (cur.trace_id IS NULL OR (cur.circuit = inp.circuit AND cur.completion IS NULL))
               AS ok
    FROM inp LEFT JOIN cur USING (trace_id) LEFT JOIN lease USING (trace_id)
), created AS (
    INSERT INTO {{state}} AS s (trace_id, circuit, schematic_version, created_at, updated_at)
    SELECT trace_id, circuit, schematic_version, {NOW}, {NOW} FROM chk
    WHERE ok AND NOT found
    ORDER BY trace_id
    ON CONFLICT (trace_id) DO NOTHING
    RETURNING s.trace_id
), ev AS (  -- the rows every check passes; the others write nothing
    INSERT INTO {{events}} AS e (trace_id, generation, step, schematic_version, outcome_kind,
                                node_id, timestamp_ms, payload_hash, payload, written_at)
    SELECT trace_id, 0, step, schematic_version, outcome_kind, node_id, timestamp_ms,
           payload_hash, payload, {NOW}
    FROM chk WHERE ok AND (found OR trace_id IN (SELECT trace_id FROM created))
    ON CONFLICT DO NOTHING
    RETURNING e.trace_id
)
SELECT chk.idx, chk.found, chk.cur_circuit AS circuit, chk.completion, chk.token,
       {ms("chk.expires_at")} AS expires_at_ms, {ms("now()")} AS now_ms,
       (SELECT ARRAY[o.outcome_kind, o.node_id, o.payload_hash] FROM {{events}} o
        WHERE o.trace_id = chk.trace_id AND o.generation = 0 AND o.step = chk.step) AS old
FROM chk
WHERE chk.trace_id NOT IN (SELECT trace_id FROM ev)
"""
"""One statement for a group-commit batch: rows come back only for the envelopes it did
not write (a retry, a conflict, a rule's error or a race), with what the rules need;
every other envelope of the batch was written. The batch travels as one JSON document:
orjson builds it ~10x faster than asyncpg encodes eleven arrays, and the payloads go in
as they are (`orjson.Fragment`), the server keeping their exact text."""


def _append_one(fenced: bool) -> str:
    """APPEND for a single envelope, with scalar parameters in APPEND's order ($10, the
    fence, only when `fenced`): the same checks and writes and the same result columns.
    ~20% cheaper to execute than unnesting one-element arrays, and the unfenced form,
    without the lease CTE, another ~15 us."""
    lease_ok = "EXISTS (SELECT FROM lease WHERE token = $10 AND expires_at > now())"
    return f"""
WITH cur AS (  -- locked FOR SHARE, as in APPEND
    SELECT s.circuit, s.completion FROM {{state}} s WHERE s.trace_id = $1 FOR SHARE
){
        ''', lease AS (
    SELECT l.token, l.expires_at FROM {leases} l WHERE l.trace_id = $1 FOR SHARE
)'''
        if fenced
        else ""
    }, created AS (  -- a new trace (only if the checks pass: nothing is written otherwise)
    INSERT INTO {{state}} (trace_id, circuit, schematic_version, created_at, updated_at)
    SELECT $1, $2, $3, {NOW}, {NOW}
    WHERE NOT EXISTS (SELECT FROM cur){f" AND {lease_ok}" if fenced else ""}
    ON CONFLICT (trace_id) DO NOTHING
    RETURNING 1
), ev AS (
    INSERT INTO {{events}} (trace_id, generation, step, schematic_version, outcome_kind,
                           node_id, timestamp_ms, payload_hash, payload, written_at)
    SELECT $1, 0, $4, $3, $5, $6, $7, $8, $9::json, {NOW}
    WHERE {f"{lease_ok} AND " if fenced else ""}(
        EXISTS (SELECT FROM cur WHERE circuit = $2 AND completion IS NULL)
        OR EXISTS (SELECT FROM created))
    ON CONFLICT DO NOTHING
    RETURNING 1
)
SELECT EXISTS (SELECT FROM cur) AS found, cur.circuit, cur.completion,
       EXISTS (SELECT FROM ev) AS written,
       {"lease.token" if fenced else "NULL::bigint AS token"},
       {ms("lease.expires_at") if fenced else "NULL::bigint"} AS expires_at_ms,
       {ms("now()")} AS now_ms,
       CASE WHEN NOT EXISTS (SELECT FROM ev) THEN (  -- only then: a retry, a conflict, a race
           SELECT ARRAY[o.outcome_kind, o.node_id, o.payload_hash] FROM {{events}} o
           WHERE o.trace_id = $1 AND o.generation = 0 AND o.step = $4
       ) END AS old
FROM (SELECT) one LEFT JOIN cur ON true{" LEFT JOIN lease ON true" if fenced else ""}
"""


APPEND_ONE = _append_one(fenced=False)
APPEND_ONE_FENCED = _append_one(fenced=True)

# --- reads ------------------------------------------------------------------------

LOAD = f"""
SELECT s.circuit, s.schematic_version, s.resumed_from_step, s.completion,
       s.input::text AS input, s.attempts, s.forked_from, s.forked_at_step,
       {ms("s.created_at")} AS created_at_ms,
       {ms("greatest(s.updated_at, ev.last_written)")} AS updated_at_ms,
       {ms("s.completed_at")} AS completed_at_ms, ev.*,
       (SELECT json_agg(json_build_array(i.target_node, i.timestamp_ms, i.payload_override)
                        ORDER BY i.seq)
        FROM {{interventions}} i WHERE i.trace_id = s.trace_id) AS interventions
FROM {{state}} s
LEFT JOIN LATERAL (  -- one array per column, all in the same (generation, step) order
    SELECT array_agg(e.generation) AS generations, array_agg(e.step) AS steps,
           array_agg(e.schematic_version) AS versions, array_agg(e.outcome_kind) AS kinds,
           array_agg(e.node_id) AS node_ids, array_agg(e.timestamp_ms) AS timestamps,
           array_agg(e.payload_hash) AS hashes, array_agg(e.payload::text) AS payloads,
           max(e.written_at) AS last_written
    FROM (SELECT * FROM {{events}} e WHERE e.trace_id = s.trace_id
          ORDER BY e.generation, e.step) e
) ev ON true
WHERE s.trace_id = $1
"""
"""The trace's row with its events as column arrays (live first, then superseded in
resume order; asyncpg decodes arrays in binary, ~2x faster than one `json_agg` of rows
to parse) and its interventions as JSON: one round trip."""

_LIVE_LEASE = "(l.holder IS NOT NULL AND l.expires_at > now())"

LIST_TRACES = f"""
SELECT s.trace_id, s.circuit, s.schematic_version, s.completion, s.resumed_from_step,
       {ms("s.created_at")} AS created_at_ms, {ms("live.updated_at")} AS updated_at_ms,
       {ms("s.completed_at")} AS completed_at_ms,
       coalesce({_LIVE_LEASE}, false) AS lease_live, live.last_step, live.event_count,
       s.attempts
FROM {{state}} s
LEFT JOIN {{leases}} l ON l.trace_id = s.trace_id
CROSS JOIN LATERAL (  -- a resume touches the state row, so the live events suffice
    SELECT max(e.step) AS last_step, count(*) AS event_count,
           greatest(s.updated_at, max(e.written_at)) AS updated_at
    FROM {{events}} e WHERE e.trace_id = s.trace_id AND e.generation = 0
) live
WHERE s.trace_id > $1
  AND ($2::text IS NULL OR s.circuit = $2)
  AND ($3::bigint IS NULL OR live.updated_at < {ts("$3")})
  AND ($6::bigint IS NULL OR s.attempts >= $6)
  AND CASE $4::text
        WHEN 'any' THEN true
        WHEN 'running' THEN s.completion IS NULL AND coalesce({_LIVE_LEASE}, false)
        WHEN 'interrupted' THEN s.completion IS NULL AND NOT coalesce({_LIVE_LEASE}, false)
        WHEN 'completed' THEN s.completion IS NOT NULL
        ELSE s.completion = $4
      END
ORDER BY s.trace_id
LIMIT $5
"""

NOW_MS = f"SELECT {ms('now()')}"

# --- resume, interventions (checked in Python inside one transaction), complete ---

LOCK_TRACE = f"""
WITH s AS (
    SELECT completion, epoch FROM {{state}} WHERE trace_id = $1 FOR NO KEY UPDATE
), l AS (  -- after the state row (EXISTS): every statement locks state rows, then leases
    SELECT token, expires_at FROM {{leases}}
    WHERE trace_id = $1 AND $2 AND EXISTS (SELECT FROM s) FOR SHARE
)
SELECT s.completion, s.epoch,
       (SELECT max(step) FROM {{events}} e WHERE e.trace_id = $1 AND e.generation = 0)
           AS last_step,
       (SELECT token FROM l) AS token, (SELECT {ms("expires_at")} FROM l) AS expires_at_ms,
       {ms("now()")} AS now_ms
FROM s
"""

RESUME = f"""
WITH moved AS (
    UPDATE {{events}} SET generation = $3
    WHERE trace_id = $1 AND generation = 0 AND step > $2
)
UPDATE {{state}} SET resumed_from_step = $2, epoch = $3, updated_at = {NOW}
WHERE trace_id = $1
"""

COMPLETE = f"""
WITH cur AS (
    SELECT s.completion FROM {{state}} s WHERE s.trace_id = $1 FOR NO KEY UPDATE
), lease AS (  -- only when the call carries a fence; locked to be released below
    SELECT l.token, l.expires_at FROM {{leases}} l
    WHERE l.trace_id = $1 AND $3::bigint IS NOT NULL FOR NO KEY UPDATE
), done AS (  -- `rules.completion_change` and `rules.check_fence`, in SQL
    UPDATE {{state}} s SET completion = $2, completed_at = {NOW}, updated_at = {NOW}
    WHERE s.trace_id = $1
      AND EXISTS (SELECT FROM cur WHERE completion IS NULL
                  OR (completion = 'fault' AND $2 = 'compensated'))
      AND ($3::bigint IS NULL OR EXISTS (
          SELECT FROM lease WHERE token = $3 AND {ms("expires_at")} > {ms("now()")}))
    RETURNING 1
), released AS (  -- a fenced completion that wrote gives its (live) lease up with it
    UPDATE {{leases}} SET holder = NULL, expires_at = timestamptz 'epoch'
    WHERE trace_id = $1 AND token = $3 AND EXISTS (SELECT FROM done)
)
SELECT EXISTS (SELECT FROM cur) AS found, cur.completion, EXISTS (SELECT FROM done) AS written,
       lease.token, {ms("lease.expires_at")} AS expires_at_ms, {ms("now()")} AS now_ms
FROM (SELECT) one LEFT JOIN cur ON true LEFT JOIN lease ON true
"""
"""`complete` in one statement: the state row locked, the rules' checks, the update, and
for a fenced call the lease's release. When it did not write, the rules decide on the
returned row (no-op, or which error) and the lease is left as it is."""

COMPLETE_BATCH = f"""
WITH inp AS (  -- $1: a JSON array of objects, one per call (`postgres_rows.complete_document`)
    SELECT i.t AS trace_id, i.s AS state, i.f AS fence, i.x AS idx
    FROM json_to_recordset($1::json) AS i(t text, s text, f bigint, x int)
), cur AS (  -- locked in key order, as every batch does: batches cannot deadlock
    SELECT s.trace_id, s.completion FROM {{state}} s
    WHERE s.trace_id = ANY(ARRAY(SELECT trace_id FROM inp))
    ORDER BY s.trace_id FOR NO KEY UPDATE
), lease AS (
    SELECT l.trace_id, l.token, l.expires_at FROM {{leases}} l
    WHERE l.trace_id = ANY(ARRAY(SELECT trace_id FROM inp WHERE fence IS NOT NULL))
    ORDER BY l.trace_id FOR NO KEY UPDATE
), chk AS (  -- COMPLETE's checks, per call
    SELECT inp.*, cur.trace_id IS NOT NULL AS found, cur.completion, lease.token,
           lease.expires_at,
           cur.trace_id IS NOT NULL
           AND (cur.completion IS NULL
                OR (cur.completion = 'fault' AND inp.state = 'compensated'))
           AND (inp.fence IS NULL OR (lease.token = inp.fence
                                      AND {ms("lease.expires_at")} > {ms("now()")})) AS ok
    FROM inp LEFT JOIN cur USING (trace_id) LEFT JOIN lease USING (trace_id)
), done AS (
    UPDATE {{state}} s SET completion = chk.state, completed_at = {NOW}, updated_at = {NOW}
    FROM chk WHERE s.trace_id = chk.trace_id AND chk.ok
    RETURNING s.trace_id
), released AS (
    UPDATE {{leases}} l SET holder = NULL, expires_at = timestamptz 'epoch'
    FROM chk WHERE l.trace_id = chk.trace_id AND l.token = chk.fence AND chk.ok
)
SELECT chk.idx, chk.found, chk.completion, chk.trace_id IN (SELECT trace_id FROM done)
       AS written, chk.token, {ms("chk.expires_at")} AS expires_at_ms, {ms("now()")} AS now_ms
FROM chk
"""
"""COMPLETE for a batch of calls from concurrent runs (one per trace): one transaction and
one commit for all of them. The rows are COMPLETE's, one per call (`idx`, from 1)."""

SAVE_INTERVENTION = f"""
WITH added AS (
    INSERT INTO {{interventions}} (trace_id, seq, target_node, timestamp_ms, payload_override)
    SELECT $1, coalesce(max(seq), 0) + 1, $2, $3, $4::json
    FROM {{interventions}} WHERE trace_id = $1
)
UPDATE {{state}} SET updated_at = {NOW} WHERE trace_id = $1
"""

# --- deletes ----------------------------------------------------------------------

PURGE_BATCH = f"""
WITH doomed AS (
    SELECT trace_id FROM {{state}}
    WHERE completion IS NOT NULL AND completed_at < {ts("$1")}
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
SELECT $1, * FROM unnest($2::int[], $3::int[], $4::text[], $5::text[], $6::text[],
                         $7::bigint[], $8::text[], $9::json[])
"""

IMPORT_INTERVENTIONS = """
INSERT INTO {interventions} (trace_id, seq, target_node, timestamp_ms, payload_override)
SELECT $1, * FROM unnest($2::int[], $3::text[], $4::bigint[], $5::json[])
"""

# --- leases (the token survives release, so it only ever grows) -------------------

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
WITH inp AS (  -- $1: a JSON array of objects, one per call (`postgres_leases.document`)
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

# --- compensation idempotency ----------------------------------------------------

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

PURGE_COMPENSATIONS = f"""
WITH doomed AS (
    SELECT idempotency_key FROM {{compensations}} WHERE claimed_at < {ts("$1")}
    LIMIT $2 FOR UPDATE SKIP LOCKED
), d AS (
    DELETE FROM {{compensations}} WHERE idempotency_key IN (SELECT idempotency_key FROM doomed)
    RETURNING 1
)
SELECT count(*) FROM d
"""


@dataclass(frozen=True, slots=True)
class Statements:
    """The statements above with one prefix's table names filled in."""

    append: str
    append_one: str
    append_one_fenced: str
    load: str
    list_traces: str
    now_ms: str
    lock_trace: str
    resume: str
    complete: str
    complete_batch: str
    save_intervention: str
    purge_batch: str
    delete_trace: str
    import_state: str
    import_events: str
    import_interventions: str
    acquire_lease: str
    acquire_lease_batch: str
    renew_lease: str
    release_lease: str
    get_lease: str
    claim: str
    mark_compensated: str
    get_compensation: str
    release_compensation: str
    list_unfinished: str
    purge_compensations: str


def table_names(prefix: str) -> dict[str, str]:
    prefix = validate_prefix(prefix)
    return {
        "state": f"{prefix}_state",
        "events": f"{prefix}_events",
        "interventions": f"{prefix}_interventions",
        "leases": f"{prefix}_leases",
        "compensations": f"{prefix}_compensation_idempotency",
        "schema_version": f"{prefix}_schema_version",
    }


def render(prefix: str) -> Statements:
    """Every statement for tables named `<prefix>_state`, `<prefix>_events`, ..."""
    names = table_names(prefix)
    templates = globals()
    return Statements(
        **{f.name: templates[f.name.upper()].format(**names) for f in fields(Statements)}
    )
