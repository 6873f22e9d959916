"""Each action over HTTP, with the token: what it changes in the store, and that it is
logged and shows in the trace's timeline."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from ranvier import open_store
from ranvier.model import CompensationState, CompletionState
from ranvier.stores.base import PersistenceStore
from tests.inspect.conftest import TOKEN, actions_on, form_token, served
from tests.inspect.pipelines import REFUND_FAILS, REFUNDED, app
from tests.inspect.seed import GOOD, IDS, event, open_trace, seed

BEARER = {"authorization": f"Bearer {TOKEN}"}
KEY = f"{IDS.comp_failed}:orders:RuntimeError"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[PersistenceStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'inspect.db'}")
    await seed(opened)
    try:
        yield opened
    finally:
        await opened.close()


async def act(client: Any, name: str, trace_id: str, **fields: str) -> Any:
    csrf = await form_token(client, f"/trace?id={trace_id}")
    data = {"csrf": csrf, "trace_id": trace_id, **fields}
    return await client.post(f"/actions/{name}", data=data, headers=BEARER)


def target(response: Any) -> str:
    assert response.status_code == 303, response.text
    return parse_qs(urlsplit(response.headers["location"]).query)["id"][0]


async def timeline_of(client: Any, trace_id: str) -> str:
    page = (await client.get("/trace", params={"id": trace_id})).text
    return page[page.index('id="timeline"') :]


async def test_resume_runs_the_rest_of_the_pipeline(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        assert target(await act(client, "resume", IDS.interrupted)) == IDS.interrupted
        await inspector.idle()
        timeline = await timeline_of(client, IDS.interrupted)
    trace = await store.load(IDS.interrupted)
    assert trace is not None and trace.completion is CompletionState.SUCCESS
    assert [e.node_id for e in trace.events] == ["validate", "charge", "ship"]
    assert "started" in timeline and "finished: completed, completion success" in timeline


async def test_resume_of_a_poisoned_trace_needs_force(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        refused = await act(client, "resume", IDS.poisoned)
        forced = await act(client, "resume", IDS.poisoned, force="1")
        await inspector.idle()
    assert refused.status_code == 400 and "poisoned" in refused.text
    assert target(forced) == IDS.poisoned
    trace = await store.load(IDS.poisoned)
    assert trace is not None and trace.completion is CompletionState.SUCCESS


async def test_resume_of_a_running_trace_is_refused(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, _):
        response = await act(client, "resume", IDS.running)
    assert response.status_code == 409 and "holds the lease" in response.text


async def test_actions_that_run_the_pipeline_need_the_app(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store) as (client, _):
        response = await act(client, "resume", IDS.interrupted)
    assert response.status_code == 400 and "--app" in response.text


async def test_intervene_checks_the_node_and_the_json(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        bad_json = await act(client, "intervene", IDS.interrupted, node="ship", payload="{qty: 2")
        empty = await act(client, "intervene", IDS.interrupted, node="ship", payload=" ")
        nan = await act(client, "intervene", IDS.interrupted, node="ship", payload="NaN")
        bad_node = await act(client, "intervene", IDS.interrupted, node="pack", payload="{}")
        done = await act(
            client,
            "intervene",
            IDS.interrupted,
            node="charge",
            payload='{"qty": 7, "address": "x"}',
        )
        timeline = await timeline_of(client, IDS.interrupted)
        outcomes = [e.outcome for e in inspector.actions if e.action == "intervene"]
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.text
    assert "{qty: 2" in bad_json.text  # what was typed is kept in the form
    assert empty.status_code == 400 and nan.status_code == 400
    assert bad_node.status_code == 400 and "no step &#39;pack&#39;" in bad_node.text
    assert target(done) == IDS.interrupted
    trace = await store.load(IDS.interrupted)
    assert trace is not None
    assert [(i.target_node, i.payload_override) for i in trace.interventions] == [
        ("charge", {"qty": 7, "address": "x"})
    ]
    assert "mark-intervention" in timeline and "ok: at charge" in timeline
    assert outcomes == ["failed", "failed", "failed", "failed", "ok"]


async def test_intervene_without_the_app_takes_any_node(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store) as (client, _):
        page = (await client.get("/trace", params={"id": IDS.interrupted})).text
        done = await act(client, "intervene", IDS.interrupted, node="custom", payload="null")
    assert '<datalist id="nodes">' in page
    assert target(done) == IDS.interrupted


async def test_cancel_completes_the_trace_as_cancelled(
    store: PersistenceStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="ranvier.inspect")
    async with served(actions_on(), store=store, app=app) as (client, _):
        assert target(await act(client, "cancel", IDS.rewound)) == IDS.rewound
        again = await act(client, "cancel", IDS.succeeded)
        timeline = await timeline_of(client, IDS.rewound)
    trace = await store.load(IDS.rewound)
    assert trace is not None and trace.completion is CompletionState.CANCELLED
    assert again.status_code == 409
    assert "mark-action" in timeline and ">cancel<" in timeline
    assert any(
        "action=cancel" in r.message and f"trace_id={IDS.rewound}" in r.message
        for r in caplog.records
    )


async def test_fork_runs_a_new_trace_from_a_step(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        response = await act(
            client,
            "fork",
            IDS.succeeded,
            at="charge",
            new_id="order-ok-again",
            value='{"qty": 9, "address": "y"}',
        )
        await inspector.idle()
        page = (await client.get("/trace", params={"id": "order-ok-again"})).text
        source = await timeline_of(client, IDS.succeeded)
        taken = await act(client, "fork", IDS.succeeded, at="ship", new_id="order-ok-again")
    assert target(response) == "order-ok-again"
    forked = await store.load("order-ok-again")
    assert forked is not None and forked.completion is CompletionState.SUCCESS
    assert forked.forked_from is not None and forked.forked_from.trace_id == IDS.succeeded
    assert forked.events[1].payload["qty"] == 9
    assert "forked" in page and "into order-ok-again" in source
    assert taken.status_code == 400 and "already" in taken.text


async def test_release_drops_an_unfinished_compensation_claim(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, _):
        assert target(await act(client, "release", IDS.comp_failed, key=KEY)) == IDS.comp_failed
        other = await act(
            client, "release", IDS.comp_failed, key=f"{IDS.faulted}:orders:RuntimeError"
        )
        timeline = await timeline_of(client, IDS.comp_failed)
    assert await store.compensations.get(KEY) is None
    assert other.status_code == 400  # only the keys of the trace shown
    assert "release claim" in timeline


async def test_retry_compensation_runs_the_hook_again(store: PersistenceStore) -> None:
    REFUND_FAILS.discard(IDS.comp_failed)
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        assert target(await act(client, "compensate", IDS.comp_failed, key=KEY)) == IDS.comp_failed
        await inspector.idle()
        timeline = await timeline_of(client, IDS.comp_failed)
    record = await store.compensations.get(KEY)
    assert record is not None and record.state is CompensationState.COMPENSATED
    trace = await store.load(IDS.comp_failed)
    assert trace is not None and trace.completion is CompletionState.COMPENSATED
    assert IDS.comp_failed in REFUNDED
    assert "finished: compensated" in timeline


async def test_an_unknown_action_or_trace_is_an_error(store: PersistenceStore) -> None:
    async with served(actions_on(), store=store, app=app) as (client, _):
        unknown = await act(client, "explode", IDS.interrupted)
        csrf = await form_token(client, f"/trace?id={IDS.interrupted}")
        missing = await client.post(
            "/actions/cancel", data={"csrf": csrf, "trace_id": "nope"}, headers=BEARER
        )
    assert unknown.status_code == 400 and "no action" in unknown.text
    assert missing.status_code == 404


async def test_the_audit_log_file_keeps_actions_across_restarts(
    store: PersistenceStore, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    async with served(actions_on(audit_log=audit), store=store, app=app) as (client, _):
        await act(client, "cancel", IDS.interrupted)
    assert '"action":"cancel"' in audit.read_text()
    async with served(actions_on(audit_log=audit), store=store, app=app) as (client, _):
        timeline = await timeline_of(client, IDS.interrupted)
    assert "mark-action" in timeline and ">cancel<" in timeline


async def test_stopping_the_inspector_cancels_its_runs_and_logs_it(store: PersistenceStore) -> None:
    slow = replace(
        open_trace("order-slow", 0),
        events=(event("order-slow", 0, "validate", {**GOOD, "slow": True}),),
    )
    await store.import_trace(slow)
    async with served(actions_on(), store=store, app=app) as (client, inspector):
        assert target(await act(client, "resume", "order-slow")) == "order-slow"
        await inspector.drain(grace_s=0.2)
        entries = [(e.action, e.outcome) for e in inspector.actions.for_trace("order-slow")]
    assert entries == [("resume", "started"), ("resume", "cancelled")]
    trace = await store.load("order-slow")
    assert trace is not None and trace.completion is CompletionState.CANCELLED  # as Ctrl+C does
