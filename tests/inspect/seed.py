"""The traces every inspector test looks at, written through the runtime and the store.

One of each: succeeded, faulted with a traceback and a compensated claim, faulted with a
failed compensation, interrupted (resumable), poisoned, running under a live lease, with
superseded events and an intervention, forked, cancelled, and one whose payload and id
hold markup (`<script>`), which must show as text.
"""

from __future__ import annotations

from dataclasses import dataclass

from ranvier.model import (
    Intervention,
    OutcomeKind,
    PersistedTrace,
    PersistenceEnvelope,
    TraceStart,
    now_ms,
)
from ranvier.runtime import cancel
from ranvier.stores.base import PersistenceStore
from tests.inspect.pipelines import REFUND_FAILS, orders

XSS = "<script>window.__pwned=1</script>"
XSS_ID = "xss-<script>window.__pwned=2</script>"
WORKER = "worker-7@host-a"


@dataclass(frozen=True, slots=True)
class Ids:
    succeeded: str = "order-ok"
    faulted: str = "order-no-address"
    comp_failed: str = "order-refund-down"
    interrupted: str = "order-interrupted"
    poisoned: str = "order-poisoned"
    running: str = "order-running"
    rewound: str = "order-rewound"
    forked: str = "order-forked"
    cancelled: str = "order-cancelled"
    xss: str = XSS_ID
    old_version: str = "order-v1"


IDS = Ids()
GOOD = {"qty": 2, "address": "1 Main St"}


def event(
    trace_id: str, step: int, node: str, payload: object, version: str = "2"
) -> PersistenceEnvelope:
    return PersistenceEnvelope(
        trace_id=trace_id,
        circuit=orders.name,
        schematic_version=version,
        step=step,
        node_id=node,
        outcome_kind=OutcomeKind.NEXT,
        payload=payload,
    )


def open_trace(
    trace_id: str, steps: int, *, attempts: int = 1, version: str = "2"
) -> PersistedTrace:
    """An unfinished trace after `steps` checkpoints, with no lease: interrupted."""
    now = now_ms()
    names = orders.step_names
    return PersistedTrace(
        trace_id=trace_id,
        circuit=orders.name,
        schematic_version=version,
        events=tuple(
            event(trace_id, i, names[i], {**GOOD, "done": i}, version) for i in range(steps)
        ),
        created_at_ms=now - 60_000,
        updated_at_ms=now - 30_000,
        input=GOOD,
        attempts=attempts,
    )


async def seed(store: PersistenceStore) -> Ids:
    ids = IDS
    await orders.run(GOOD, store=store, trace_id=ids.succeeded)
    await orders.run({"qty": 1}, store=store, trace_id=ids.faulted)
    REFUND_FAILS.add(ids.comp_failed)
    await orders.run({"qty": 3}, store=store, trace_id=ids.comp_failed)
    await store.import_trace(open_trace(ids.interrupted, 1))
    await store.import_trace(open_trace(ids.poisoned, 2, attempts=5))
    await store.import_trace(open_trace(ids.old_version, 1, version="1"))
    await store.import_trace(open_trace(ids.rewound, 2))
    await store.resume(ids.rewound, 0)
    await store.append(event(ids.rewound, 1, "charge", {**GOOD, "payment": "retried"}))
    await store.save_intervention(
        ids.rewound,
        Intervention(target_node="ship", payload_override={**GOOD, "address": "2 Side St"}),
    )
    start = TraceStart(circuit=orders.name, schematic_version="2", input=GOOD)
    await store.acquire_lease(ids.running, WORKER, 3_600_000, start=start)
    await store.append(event(ids.running, 0, "validate", {**GOOD, "valid": True}))
    await orders.fork(ids.succeeded, store=store, at="ship", trace_id=ids.forked)
    await store.import_trace(open_trace(ids.cancelled, 1))
    await cancel(store, ids.cancelled)
    await orders.run({**GOOD, "note": XSS}, store=store, trace_id=ids.xss)
    return ids
