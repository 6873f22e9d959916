"""Prometheus metrics, module-level in one place so the ops CLI can serve them.

They live in prometheus-client's default registry (`prometheus_client.REGISTRY`).
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

CHECKPOINT_FAILURES = Counter(
    "ranvier_checkpoint_failures_total",
    "Checkpoint appends that failed because the store was unavailable (each attempt).",
    ["circuit", "adapter"],
)

CHECKPOINT_LATENCY = Histogram(
    "ranvier_checkpoint_latency_seconds",
    "Time to store one checkpoint, retries included.",
    ["circuit", "adapter"],
    buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5),
)

COMPENSATIONS = Counter(
    "ranvier_compensations_total",
    "Compensation hooks run, by result (compensated, failed: the hook raised on every "
    "attempt, recorded as a compensation_failed fault in the trace).",
    ["circuit", "result"],
)

LEASES_LOST = Counter(
    "ranvier_leases_lost_total",
    "Runs stopped because their lease on the trace was lost.",
    ["circuit"],
)

POISONED = Counter(
    "ranvier_poisoned_traces_total",
    "Traces that recover found poisoned (started max_attempts times without completing) "
    "and left alone; counted once per recover call and trace.",
    ["circuit"],
)
