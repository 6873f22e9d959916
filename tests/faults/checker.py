"""After a campaign: read the store, the ledger and the histories; list every anomaly.

What must hold (docs/reliability.md):
- every acknowledged checkpoint is stored, as acknowledged, never rewritten;
- no step ran again after its checkpoint was stored (so no acknowledged step re-ran),
  and a step re-ran only in a worker that was killed, stopped or saw a fault;
- every trace ended completed (after the drain), with its lease released;
- each compensation ran at most once, exactly once where its fault is recorded;
- each worker's `ranvier_checkpoint_failures_total` equals the store failures it saw;
- no worker met an error the runtime should never raise (a conflict, a bug).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ranvier import CompletionState, OutcomeKind, PersistedTrace
from ranvier.runtime import compensation_key
from tests.crash import effects
from tests.faults import workload
from tests.faults.history import read_all
from tests.faults.recording import exec_of

EXPECTED_ERRORS = frozenset({"StoreUnavailable", "LeaseLost", "TraceBusy"})
"""What a write or a run may meet under faults; anything else is an anomaly."""
EXPECTED_ENDS = frozenset({"completed", "lease_lost", "unrecorded", "compensating"})
EXPECTED_RECOVER_FAILURES = (
    "StoreUnavailable",
    "LeaseLost",
    "lease_lost",
    "unrecorded",
    "compensating",
)
PERSISTENCE_FAULT = "persistence_unavailable"
STALE_RERUNS_ARE_ANOMALIES = False
"""A known runtime bug (test_stale_worker.py, docs/reliability.md): a worker whose lease
ran out while it waited for a checkpoint's answer starts the next step although another
worker has taken the trace over and checkpointed that step (its own write of it is then
fenced off). Counted as `stale_reruns` until fixed; then set this to True."""
HALT_CONFLICTS_ARE_ANOMALIES = False
"""Another known runtime bug (test_unknown_outcome.py): after a checkpoint whose answer
was lost and retries that failed, the halt writes its fault at that same step, gets
`CheckpointConflict`, and the trace is completed as FAULT with no fault recorded.
Counted as `halt_conflicts` until fixed; then set this to True."""
STORE_CALLS = frozenset(
    {
        "append",
        "complete",
        "resume",
        "acquire_lease",
        "renew_lease",
        "release_lease",
        "claim",
        "was_compensated",
        "mark_compensated",
    }
)


@dataclass
class Verdict:
    anomalies: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class _Evidence:
    """The ledger and the histories, indexed."""

    steps: dict[str, list[effects.Execution]]
    compensations: dict[str, list[effects.Execution]]
    lines: list[dict[str, Any]]
    killed: set[int]
    troubled: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    """pid -> traces for which that process saw an error (so a re-run is explained)."""
    acks: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    tokens: Counter[str] = field(default_factory=Counter)
    """trace -> the greatest fencing token any worker got for it."""
    held: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(pid, trace) -> the greatest fencing token that process got for the trace."""
    unknown: set[tuple[int, str, int]] = field(default_factory=set)
    """(pid, trace, step) of appends that failed: their outcome is unknown."""
    halt_conflicts: set[str] = field(default_factory=set)

    def index(self) -> None:
        for line in self.lines:
            trace = line.get("trace")
            if trace is None:
                continue
            if line["op"] == "acquire_lease" and line.get("token"):
                self.tokens[trace] = max(self.tokens[trace], line["token"])
                held = (line["pid"], trace)
                self.held[held] = max(self.held[held], line["token"])
            ok = line.get("result") in ("ok", None, "completed")
            if line["op"] in ("append", "complete") and line.get("result") == "ok":
                self.acks[trace].append(line)
            elif not ok:
                self.troubled[line["pid"]].add(trace)


async def check(store: Any, circuit: str, run_dir: Path, killed: set[int]) -> Verdict:
    ledger = workload.ledger_path(run_dir)
    evidence = _Evidence(
        steps=effects.executions(ledger, "step"),
        compensations=effects.executions(ledger, "compensation"),
        lines=read_all(run_dir),
        killed=killed,
    )
    evidence.index()
    verdict = Verdict()
    _check_workers(evidence, verdict)
    traces = await _all_traces(store, circuit)
    traces |= {key.rsplit(":", 1)[0] for key in evidence.steps}
    traces |= {t for t in evidence.acks if t is not None}
    for trace_id in sorted(traces):
        await _check_trace(store, circuit, trace_id, evidence, verdict)
    return verdict


async def _all_traces(store: Any, circuit: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        page = await store.list_traces(circuit=circuit, limit=500, cursor=cursor)
        found |= {s.trace_id for s in page.items}
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def _check_workers(evidence: _Evidence, verdict: Verdict) -> None:
    counts = verdict.counts
    for line in evidence.lines:
        op, result = line["op"], line.get("result")
        counts["operations"] += op in STORE_CALLS
        if result == "LeaseLost" or (op == "run_end" and result == "lease_lost"):
            counts["lease_lost_seen"] += 1
        if op == "exit":
            counts["workers_checked"] += 1
            counts["store_failures"] += line["failures"]
        if _known_halt_conflict(line, evidence):
            counts["halt_conflicts"] += op == "append"
            if not HALT_CONFLICTS_ARE_ANOMALIES:
                continue
        problem = _line_problem(line, evidence)
        if problem is not None:
            verdict.anomalies.append(f"{line['w']} (pid {line['pid']}): {problem}")


def _line_problem(line: dict[str, Any], evidence: _Evidence) -> str | None:
    """What is wrong with one history line, if anything."""
    op, result, trace = line["op"], line.get("result"), str(line.get("trace"))
    if op == "exit" and line["counter"] != line["failures"]:
        return (
            f"ranvier_checkpoint_failures_total rose by {line['counter']}, the worker saw "
            f"{line['failures']} store failures"
        )
    if op == "run_end":
        ok = result in EXPECTED_ENDS | EXPECTED_ERRORS
        return None if ok else f"run of {trace} ended {result}: {line.get('error')}"
    if op == "recover_failed":
        ok = line["reason"].startswith(EXPECTED_RECOVER_FAILURES)
        return None if ok else f"recover failed {trace}: {line['reason']}"
    if result == "TraceCompleted" and line.get("fence") is not None:
        # a stale worker: completed by the one that took its lease over, nothing written
        if evidence.tokens[trace] > line["fence"]:
            return None
        return f"{op} of {trace} under the live lease {line['fence']} found it completed"
    if result not in (None, "ok") and result not in EXPECTED_ERRORS:
        return f"{op} of {trace} raised {result}: {line.get('error')}"
    return None


def _known_halt_conflict(line: dict[str, Any], evidence: _Evidence) -> bool:
    """The known bug of test_unknown_outcome.py: the halt's fault, written at the step
    whose checkpoint this worker wrote with an unknown outcome, conflicts with it."""
    trace = str(line.get("trace"))
    if line["op"] == "append":
        key, result = (int(line["pid"]), trace, int(line["step"])), line.get("result")
        if result == "StoreUnavailable":
            evidence.unknown.add(key)
        conflict = result == "CheckpointConflict" and line.get("kind") == "Fault"
        if conflict and key in evidence.unknown:
            evidence.halt_conflicts.add(trace)
            return True
        return False
    said = f"{line.get('result')} {line.get('reason', '')}"
    return trace in evidence.halt_conflicts and "CheckpointConflict" in said


async def _check_trace(
    store: Any, circuit: str, trace_id: str, evidence: _Evidence, verdict: Verdict
) -> None:
    anomalies = verdict.anomalies
    trace: PersistedTrace | None = await store.load(trace_id)
    if trace is None:
        if any(k.startswith(f"{trace_id}:") for k in evidence.steps) or evidence.acks[trace_id]:
            anomalies.append(f"{trace_id}: steps ran or checkpoints were acknowledged, not stored")
        return
    verdict.counts["traces"] += 1
    if trace.completion is None:
        lease = await store.get_lease(trace_id)
        anomalies.append(f"{trace_id}: still open after the drain (lease {lease})")
        return
    verdict.counts[f"completed_{trace.completion.value}"] += 1
    if trace.superseded_events:
        anomalies.append(
            f"{trace_id}: stored checkpoints were rewritten: {trace.superseded_events}"
        )
    if await store.get_lease(trace_id) is not None:
        anomalies.append(f"{trace_id}: lease left held after completion")
    _check_shape(trace, evidence.halt_conflicts, verdict)
    _check_runs(trace, evidence, verdict)
    _check_acks(trace, evidence, verdict)
    _check_compensations(trace, circuit, evidence, verdict)


def _faults(trace: PersistedTrace) -> list[Any]:
    return [e for e in trace.events if e.outcome_kind is OutcomeKind.FAULT]


def _check_shape(trace: PersistedTrace, halt_conflicts: set[str], verdict: Verdict) -> None:
    """Steps in order; SUCCESS ran all four; COMPENSATED has one recorded fault."""
    tid, anomalies = trace.trace_id, verdict.anomalies
    steps = [e for e in trace.events if e.outcome_kind is not OutcomeKind.COMPENSATED]
    if [e.step for e in steps] != list(range(len(steps))) or any(
        e.node_id != workload.STEPS[e.step] for e in steps
    ):
        anomalies.append(f"{tid}: checkpoints out of order: {[(e.step, e.node_id) for e in steps]}")
        return
    faults = _faults(trace)
    faulty = bool(trace.input and trace.input.get("faulty"))
    if trace.completion is CompletionState.SUCCESS:
        if faults or len(steps) != len(workload.STEPS) or faulty:
            anomalies.append(f"{tid}: SUCCESS with {len(steps)} steps, faults {faults}")
        return
    if trace.completion is CompletionState.FAULT and not faults and tid in halt_conflicts:
        return  # the known bug, counted by _check_workers
    if trace.completion is not CompletionState.COMPENSATED or len(faults) != 1:
        anomalies.append(f"{tid}: ended {trace.completion} with faults {faults}")
        return
    fault = faults[0]
    kind = fault.payload.get("kind")
    if kind == PERSISTENCE_FAULT:
        verdict.counts["persistence_faults"] += 1
    elif not (faulty and kind == workload.FAULT_KIND and fault.step == workload.FAULT_STEP):
        anomalies.append(f"{tid}: unexpected fault {fault.payload} at step {fault.step}")
    if fault is not steps[-1]:
        anomalies.append(f"{tid}: steps ran after the fault at step {fault.step}")


def _check_runs(trace: PersistedTrace, evidence: _Evidence, verdict: Verdict) -> None:
    """The stored run of each step is its last; earlier runs were interrupted ones."""
    tid, anomalies = trace.trace_id, verdict.anomalies
    stored_keys = set()
    for event in trace.events:
        if event.outcome_kind is OutcomeKind.COMPENSATED:
            continue
        key = f"{tid}:{event.step}"
        stored_keys.add(key)
        runs = evidence.steps.get(key, [])
        stored = exec_of(event.payload)
        if stored is None:  # a persistence fault replaced the step's own checkpoint
            continue
        if not runs or runs[-1].id != stored:
            _ran_after_checkpoint(key, runs, stored, evidence, verdict)
            runs = [r for r in runs if r.id <= stored]
        for run in runs[:-1]:
            if run.pid not in evidence.killed and tid not in evidence.troubled[run.pid]:
                anomalies.append(
                    f"{key}: re-run after run {run.id} of pid {run.pid}, which "
                    "was neither killed nor saw a fault"
                )
        verdict.counts["reruns"] += max(0, len(runs) - 1)
    ran = {k for k in evidence.steps if k.rsplit(":", 1)[0] == tid}
    if ran - stored_keys:
        anomalies.append(f"{tid}: steps {sorted(ran - stored_keys)} ran, never checkpointed")


def _ran_after_checkpoint(
    key: str, runs: list[effects.Execution], stored: int, evidence: _Evidence, verdict: Verdict
) -> None:
    """A run after the stored one: the known stale-worker re-run, or an anomaly."""
    tid = key.rsplit(":", 1)[0]
    writer = next((r for r in runs if r.id == stored), None)
    later = [r for r in runs if r.id > stored]
    stale = writer is not None and all(
        evidence.held[(r.pid, tid)] < evidence.held[(writer.pid, tid)] for r in later
    )
    if stale and not STALE_RERUNS_ARE_ANOMALIES:
        verdict.counts["stale_reruns"] += len(later)
        return
    verdict.anomalies.append(
        f"{key}: ran again after its checkpoint (run {stored}) was "
        f"stored: {[(r.id, r.pid) for r in runs]}"
    )


def _check_acks(trace: PersistedTrace, evidence: _Evidence, verdict: Verdict) -> None:
    """Every acknowledged write is in the store as it was acknowledged."""
    by_step = {e.step: e for e in trace.events}
    for ack in evidence.acks.get(trace.trace_id, []):
        verdict.counts["acks_checked"] += 1
        if ack["op"] == "complete":
            done = {ack["state"], CompletionState.COMPENSATED.value}
            if trace.completion is None or trace.completion.value not in done:
                verdict.anomalies.append(
                    f"{trace.trace_id}: acknowledged completion "
                    f"{ack['state']} lost ({trace.completion})"
                )
            continue
        event = by_step.get(ack["step"])
        if (
            event is None
            or event.outcome_kind.value != ack["kind"]
            or (ack["exec"] is not None and exec_of(event.payload) != ack["exec"])
        ):
            verdict.anomalies.append(
                f"{trace.trace_id}:{ack['step']}: acknowledged checkpoint {ack['kind']} "
                f"(run {ack['exec']}) lost; stored {event}"
            )


def _check_compensations(
    trace: PersistedTrace, circuit: str, evidence: _Evidence, verdict: Verdict
) -> None:
    tid = trace.trace_id
    mine = {k: v for k, v in evidence.compensations.items() if k.startswith(f"{tid}:")}
    expected: set[str] = set()
    if trace.completion is CompletionState.COMPENSATED and len(_faults(trace)) == 1:
        expected.add(compensation_key(tid, circuit, _faults(trace)[0].payload.get("kind")))
    for key in expected | set(mine):
        runs = len(mine.get(key, []))
        if runs != (1 if key in expected else 0):
            verdict.anomalies.append(f"{key}: compensation ran {runs} times")
        verdict.counts["compensations"] += runs
