"""Every SQL statement the SQLite adapter runs, by name (the schema is in sqlite_schema)."""

from __future__ import annotations

STATE = "ranvier_persistence_state"
EVENTS = "ranvier_persistence_events"
INTERVENTIONS = "ranvier_persistence_interventions"
COMPENSATIONS = "ranvier_persistence_compensation_idempotency"
LEASES = "ranvier_persistence_leases"
TRACES_VIEW = "ranvier_persistence_traces"

# --- append ---------------------------------------------------------------------------


def _append_fast(*, fenced: bool) -> str:
    now = "?11" if fenced else "?10"
    lease = f"""
            AND EXISTS (SELECT 1 FROM {LEASES} l
                         WHERE l.trace_id = ?1 AND l.token = ?10 AND l.expires_at_ms > ?11)"""
    return f"""
INSERT OR IGNORE INTO {EVENTS} (trace_id, superseded, step, outcome_kind, node_id,
                      timestamp_ms, payload_hash, payload, schematic_version, recorded_at_ms)
VALUES (?1, 0, ?2, ?3, nullif(?4, ''), ?5, nullif(?6, ''), nullif(?7, ''), NULL,
        (SELECT {now} FROM {STATE} s
          WHERE s.trace_id = ?1 AND s.circuit = ?9 AND s.schematic_version = ?8
            AND s.completion IS NULL
            AND NOT EXISTS (SELECT 1 FROM {EVENTS} e
                             WHERE e.trace_id = ?1 AND e.superseded = 0 AND e.step >= ?2)\
{lease if fenced else ""}))
"""


APPEND_FAST = _append_fast(fenced=False)
"""The common case in one statement: the trace exists, is open, on this circuit and this
schematic version (so the event's version is stored as NULL, "the trace's"), and the
step is past its last live one, so no rule can object. Otherwise `recorded_at_ms` is
NULL (a NOT NULL column) or the step's key is taken: OR IGNORE writes nothing (rowcount
0), and `ops.append_checked` reads what the rules need and lets them decide, in the same
transaction (an event of another schematic version than its trace's takes that path,
and stores its version).
Parameters: trace_id, step, outcome_kind, node_id, timestamp_ms, payload_hash, payload,
schematic_version, circuit, now_ms (the writer adds now_ms when it runs). A missing
node_id, payload or payload_hash is passed as '' (none of them can be empty), never as
None: Python 3.11's sqlite3 looks for an adapter for None and raises and clears two
AttributeErrors doing so, ~3,400 instructions per None, as much as the INSERT itself.
VALUES with scalar subqueries rather than INSERT ... SELECT: SQLite copies a SELECT that
reads the table it inserts into through a temporary table first (~2.5 us more). One
subquery on the state row rather than two (`nullif(?8, <its version>)` was one): 0.1-0.4 us
less per append."""
APPEND_FAST_FENCED = _append_fast(fenced=True)
"""APPEND_FAST for a fenced append: also, the fencing token (?10) is the live lease's.
Parameters: those of APPEND_FAST with the fence before now_ms (?11)."""
APPEND_PRECHECK = f"""
SELECT s.circuit, s.schematic_version, s.completion,
       (SELECT max(e.step) FROM {EVENTS} e WHERE e.trace_id = s.trace_id AND e.superseded = 0)
  FROM {STATE} s WHERE s.trace_id = ?
"""
INSERT_STATE = f"""
INSERT INTO {STATE} (trace_id, circuit, schematic_version, created_at_ms, updated_at_ms)
VALUES (?, ?, ?, ?, ?)
"""
INSERT_EVENT = f"""
INSERT INTO {EVENTS} (trace_id, superseded, step, outcome_kind, node_id, timestamp_ms,
                      payload_hash, payload, schematic_version, recorded_at_ms)
VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?)
"""
SELECT_LIVE_EVENT = f"""
SELECT outcome_kind, node_id, payload_hash FROM {EVENTS}
 WHERE trace_id = ? AND superseded = 0 AND step = ?
"""
TOUCH_STATE = f"UPDATE {STATE} SET updated_at_ms = max(updated_at_ms, ?) WHERE trace_id = ?"

# --- trace state ------------------------------------------------------------------------

SELECT_STATE = f"""
SELECT circuit, schematic_version, completion, completed_at_ms, resumed_from_step,
       created_at_ms, updated_at_ms, rewinds, input, attempts, forked_from, forked_at_step
  FROM {STATE} WHERE trace_id = ?
"""
SELECT_EVENTS = f"""
SELECT superseded, step, outcome_kind, node_id, timestamp_ms, payload_hash, payload,
       schematic_version, recorded_at_ms
  FROM {EVENTS} WHERE trace_id = ? ORDER BY superseded, step
"""
SELECT_INTERVENTIONS = f"""
SELECT target_node, payload_override, timestamp_ms FROM {INTERVENTIONS}
 WHERE trace_id = ? ORDER BY seq
"""
LAST_LIVE_STEP = f"SELECT max(step) FROM {EVENTS} WHERE trace_id = ? AND superseded = 0"
SUPERSEDE_AFTER = f"""
UPDATE {EVENTS} SET superseded = ? WHERE trace_id = ? AND superseded = 0 AND step > ?
"""
RECORD_RESUME = f"""
UPDATE {STATE} SET resumed_from_step = ?, rewinds = ?, updated_at_ms = ? WHERE trace_id = ?
"""
COMPLETE_FAST = f"""
UPDATE {STATE} SET completion = ?2, completed_at_ms = ?4, updated_at_ms = ?4
 WHERE trace_id = ?1 AND completion IS NULL
   AND (?3 IS NULL OR EXISTS (SELECT 1 FROM {LEASES} l
                               WHERE l.trace_id = ?1 AND l.token = ?3
                                 AND l.expires_at_ms > ?4))
"""
"""The common completion in one statement: an open trace, and the fencing token (?3), if
any, is the live lease's. Otherwise it changes nothing and `ops.complete` lets the rules
decide (no trace, already completed: a no-op, FAULT -> COMPENSATED, or an error).
Parameters: trace_id, completion, fence, now_ms (added by the writer). A fenced
completion also releases the lease (RELEASE_FENCED_LEASE), which one statement cannot
do: fenced, it runs inside `ops.complete`'s transaction with that second statement."""
RECORD_COMPLETION = f"""
UPDATE {STATE} SET completion = ?, completed_at_ms = ?, updated_at_ms = ? WHERE trace_id = ?
"""
INSERT_INTERVENTION = f"""
INSERT INTO {INTERVENTIONS} (trace_id, seq, target_node, payload_override, timestamp_ms,
                             recorded_at_ms)
VALUES (?, (SELECT coalesce(max(seq), 0) + 1 FROM {INTERVENTIONS} WHERE trace_id = ?),
        ?, ?, ?, ?)
"""
TOUCH_STATE_NOW = f"UPDATE {STATE} SET updated_at_ms = ? WHERE trace_id = ?"

# --- import -------------------------------------------------------------------------------

IMPORT_STATE = f"""
INSERT INTO {STATE} (trace_id, circuit, schematic_version, completion, completed_at_ms,
                     resumed_from_step, rewinds, created_at_ms, updated_at_ms, input,
                     attempts, forked_from, forked_at_step)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
IMPORT_EVENT = f"""
INSERT INTO {EVENTS} (trace_id, superseded, step, outcome_kind, node_id, timestamp_ms,
                      payload_hash, payload, schematic_version, recorded_at_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""
IMPORT_INTERVENTION = f"""
INSERT INTO {INTERVENTIONS} (trace_id, seq, target_node, payload_override, timestamp_ms,
                             recorded_at_ms)
VALUES (?, ?, ?, ?, ?, ?)
"""

# --- delete and purge -------------------------------------------------------------------

DELETE_TRACE = (
    f"DELETE FROM {EVENTS} WHERE trace_id = ?",
    f"DELETE FROM {INTERVENTIONS} WHERE trace_id = ?",
    f"DELETE FROM {LEASES} WHERE trace_id = ?",
    f"DELETE FROM {STATE} WHERE trace_id = ?",
)
"""State last: its row count says whether the trace existed."""
PURGE_BATCH = f"""
SELECT trace_id FROM {STATE} WHERE completed_at_ms < ? ORDER BY completed_at_ms LIMIT ?
"""
"""The earliest completed traces before the cutoff. completed_at_ms is set exactly when
the trace is completed; this form (without `completion IS NOT NULL`) is what the index
ranvier_persistence_state_completed covers, as it covers COUNT_COMPLETED_BEFORE."""
COUNT_COMPLETED_BEFORE = f"SELECT count(*) FROM {STATE} WHERE completed_at_ms < ?"

# --- counts, batched loads, lease tokens ------------------------------------------------

COUNT_BY_COMPLETION = f"""
SELECT completion, count(*) FROM {STATE} GROUP BY completion
UNION ALL
SELECT 'running', count(*) FROM {STATE} s JOIN {LEASES} l ON l.trace_id = s.trace_id
 WHERE s.completion IS NULL AND l.expires_at_ms > ?
"""
"""Traces per completion (NULL: unfinished), then the unfinished ones under a live lease
(running; the others are interrupted), as `list_traces` tells them apart. Both halves
read the (completion, trace_id) index; only unfinished traces look up their lease."""
LIST_LEASE_TOKENS = f"""
SELECT trace_id, token FROM {LEASES} WHERE trace_id > ? ORDER BY trace_id LIMIT ?
"""
"""Parameters: after ('' for the first page: every id is longer), limit."""
RAISE_LEASE_TOKEN = f"""
INSERT INTO {LEASES} (trace_id, holder, token, expires_at_ms) VALUES (?, NULL, ?, 0)
ON CONFLICT (trace_id) DO UPDATE SET holder = NULL, token = excluded.token, expires_at_ms = 0
 WHERE token < excluded.token
"""
"""A restore's token: the next acquisition gets one above it; a live lease under a lower
token is dropped (its holder's fenced writes then fail); a higher token stays."""

# --- listing ------------------------------------------------------------------------------

LIST_TRACES = f"""
SELECT trace_id, circuit, schematic_version, completion, last_step, event_count,
       resumed_from_step, created_at_ms, updated_at_ms, completed_at_ms, lease_expires_at_ms,
       attempts
  FROM {TRACES_VIEW}
"""
LIST_ORDER = " ORDER BY trace_id LIMIT ?"
FILTER_AFTER = "trace_id > ?"
FILTER_CIRCUIT = "circuit = ?"
FILTER_UPDATED_BEFORE = "updated_at_ms < ?"
FILTER_COMPLETION_IS = "completion = ?"
FILTER_COMPLETED = "completion IS NOT NULL"
FILTER_RUNNING = "completion IS NULL AND lease_expires_at_ms > ?"
FILTER_INTERRUPTED = "completion IS NULL AND lease_expires_at_ms <= ?"
FILTER_MIN_ATTEMPTS = "attempts >= ?"

# --- leases -------------------------------------------------------------------------------

SELECT_LEASE = f"SELECT holder, token, expires_at_ms FROM {LEASES} WHERE trace_id = ?"
UPSERT_LEASE = f"""
INSERT INTO {LEASES} (trace_id, holder, token, expires_at_ms) VALUES (?, ?, ?, ?)
ON CONFLICT (trace_id) DO UPDATE
   SET holder = excluded.holder, token = excluded.token, expires_at_ms = excluded.expires_at_ms
"""
COUNT_ATTEMPT = f"""
UPDATE {STATE} SET attempts = attempts + 1 WHERE trace_id = ? AND completion IS NULL
"""
"""An acquisition's attempt on a stored, unfinished trace (in the acquisition's transaction)."""
START_TRACE = f"""
INSERT INTO {STATE} (trace_id, circuit, schematic_version, input, attempts, created_at_ms,
                     updated_at_ms)
VALUES (?1, ?2, ?3, ?4, 1, ?5, ?5)
ON CONFLICT (trace_id) DO UPDATE SET attempts = attempts + 1 WHERE completion IS NULL
"""
"""An acquisition with a start: the trace is created from it (its first attempt), or, if
it is stored, counts an attempt as COUNT_ATTEMPT does and is otherwise left as it is.
Parameters: trace_id, circuit, schematic_version, input (JSON text or NULL), now_ms."""
RENEW_LEASE = f"UPDATE {LEASES} SET expires_at_ms = ? WHERE trace_id = ?"
RELEASE_LEASE = f"UPDATE {LEASES} SET holder = NULL, expires_at_ms = 0 WHERE trace_id = ?"
RELEASE_FENCED_LEASE = f"""
UPDATE {LEASES} SET holder = NULL, expires_at_ms = 0 WHERE trace_id = ? AND token = ?
"""
"""A fenced completion's lease release, in the completion's transaction (the fence was
checked live by then)."""

# --- compensation idempotency ---------------------------------------------------------

CLAIM_KEY = f"""
INSERT INTO {COMPENSATIONS} (key, state, claimed_at_ms) VALUES (?, 'claimed', ?)
ON CONFLICT (key) DO NOTHING
"""
SELECT_KEY = f"""
SELECT state, claimed_at_ms, compensated_at_ms FROM {COMPENSATIONS} WHERE key = ?
"""
MARK_COMPENSATED = f"""
INSERT INTO {COMPENSATIONS} (key, state, claimed_at_ms, compensated_at_ms)
VALUES (?, 'compensated', ?, ?)
ON CONFLICT (key) DO UPDATE
   SET state = 'compensated', compensated_at_ms = excluded.compensated_at_ms
 WHERE state = 'claimed'
"""
RELEASE_KEY = f"DELETE FROM {COMPENSATIONS} WHERE key = ? AND state = 'claimed'"
LIST_UNFINISHED = f"""
SELECT key, state, claimed_at_ms, compensated_at_ms FROM {COMPENSATIONS}
 WHERE state = 'claimed' ORDER BY claimed_at_ms, key LIMIT ?
"""
PURGE_KEYS = f"""
DELETE FROM {COMPENSATIONS} WHERE key IN
  (SELECT key FROM {COMPENSATIONS}
    WHERE compensated_at_ms < ? AND state = 'compensated' LIMIT ?)
"""
"""Only keys whose hook finished: an unfinished claim stays until an operator releases
it, or its hook could run twice (the state is checked too, against a hand-edited row)."""
COUNT_KEYS = f"SELECT count(*) FROM {COMPENSATIONS} WHERE compensated_at_ms < ?"
"""compensated_at_ms is set exactly when the key is compensated; so written, the count
reads ranvier_persistence_compensation_done alone (a covering index)."""
LIST_KEYS = f"""
SELECT key, state, claimed_at_ms, compensated_at_ms FROM {COMPENSATIONS}
 WHERE key > ? ORDER BY key LIMIT ?
"""
"""Parameters: after ('' for the first page), limit."""
IMPORT_KEY = f"""
INSERT INTO {COMPENSATIONS} (key, state, claimed_at_ms, compensated_at_ms) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET state = excluded.state, claimed_at_ms = excluded.claimed_at_ms,
                                compensated_at_ms = excluded.compensated_at_ms
"""
"""A restored record, once `rules.merged_record` chose it over the stored one."""
