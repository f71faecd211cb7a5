"""Fault 6: the same event delivered twice, or before the enrollment reached its wait.

Events go in the way production sends them: through `EventRouter.handle` (store once by id,
then signal the customer's running enrollments), and, to stand for a sender or a router
that retries, as the same signal again. Each step must advance exactly once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from engine.client.routing import EventRouter
from engine.language.plan import CompiledPlan
from engine.messages import EventSignal
from engine.project import Project
from engine.store.models import Task
from tests.helpers.harness import write_project
from tests.helpers.reliability import (
    inprocess_worker,
    results,
    seed_customers,
    start_all,
    waiting_for,
)
from workflows.playbook import PlaybookWorkflow

EVENTS_PLAYBOOK = """\
playbook: events
name: Waits on a milestone, then on an event
trigger: {manual: true}
steps:
  - id: warmup
    wait: {for: 3s}
  - id: await_integration
    wait_for: {milestone: integration_connected, timeout: 1h}
  - id: connected
    task: {title: "Integration connected at {{ customer.name }}"}
  - id: await_alert
    wait_for: {event: alert.created, timeout: 1h}
  - id: alerted
    task: {title: "First alert at {{ customer.name }}"}
  - id: done
    end: {outcome: done}
"""
AWAIT_MILESTONE = "milestone integration_connected"
AWAIT_EVENT = "event alert.created"


@pytest.fixture
def project(tmp_path) -> Project:
    return write_project(tmp_path / "project", {"events": EVENTS_PLAYBOOK})


@pytest.fixture
def plan(project) -> CompiledPlan:
    return project.plan("events")


def router(project: Project, sessions, client, task_queue: str) -> EventRouter:
    return EventRouter(
        sessions, client, project.plans, project.milestones, task_queue, use_search_attributes=False
    )


def event(name: str, event_id: str | None = None) -> EventSignal:
    return EventSignal(id=event_id or uuid.uuid4().hex, name=name, at=datetime.now(UTC))


async def post(router_: EventRouter, customer: str, signal: EventSignal):
    return await router_.handle(signal.id, customer, signal.name, signal.at, signal.properties)


def tasks_by_step(sessions, enrollment_id: str) -> dict[str, int]:
    with sessions() as session:
        rows = session.scalars(select(Task).where(Task.enrollment_id == enrollment_id)).all()
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.step_id] = counts.get(row.step_id, 0) + 1
    return counts


def event_records(result, name: str) -> list:
    return [r for r in result.records if r.kind == "event" and r.detail == name]


async def test_the_same_event_twice_advances_each_wait_once(
    dev_server, sessions, project, plan, task_queue, figures
):
    [customer] = seed_customers(sessions, 1)
    events = router(project, sessions, dev_server.client, task_queue)
    async with inprocess_worker(dev_server, sessions, task_queue):
        [handle] = await start_all(dev_server.client, plan, [customer], task_queue)
        await waiting_for(handle, AWAIT_MILESTONE)

        connected = event("integration.connected")
        first = await post(events, customer, connected)
        again = await post(events, customer, connected)
        assert (first.status, again.status) == ("accepted", "duplicate")
        assert first.signalled == [handle.id] and again.signalled == []
        # a sender retrying behind the router's back
        await handle.signal(PlaybookWorkflow.event, connected)
        await handle.signal(PlaybookWorkflow.event, connected)
        await waiting_for(handle, AWAIT_EVENT)

        alert = event("alert.created")
        await post(events, customer, alert)
        await handle.signal(PlaybookWorkflow.event, alert)
        assert (await post(events, customer, alert)).status == "duplicate"
        [result] = await results([handle], timeout=30)

    assert result.outcome == "done"
    assert tasks_by_step(sessions, handle.id) == {"connected": 1, "alerted": 1}
    assert len(event_records(result, "integration.connected")) == 1
    assert len(event_records(result, "alert.created")) == 1
    assert len([r for r in result.records if r.kind == "milestone"]) == 1
    figures.update(duplicates_delivered=4, steps_advanced_twice=0)


async def test_events_before_the_wait_count_once(
    dev_server, sessions, project, plan, task_queue, figures
):
    [customer] = seed_customers(sessions, 1)
    events = router(project, sessions, dev_server.client, task_queue)
    async with inprocess_worker(dev_server, sessions, task_queue):
        [handle] = await start_all(dev_server.client, plan, [customer], task_queue)
        await waiting_for(handle, "time")  # still in warmup: neither wait reached yet
        connected, alert = event("integration.connected"), event("alert.created")
        for signal in (connected, alert, connected, alert):
            await post(events, customer, signal)
            await handle.signal(PlaybookWorkflow.event, signal)
        [result] = await results([handle], timeout=30)

    assert result.outcome == "done"
    assert tasks_by_step(sessions, handle.id) == {"connected": 1, "alerted": 1}
    assert len(event_records(result, "alert.created")) == 1
    figures.update(early_events=2, steps_advanced_twice=0)


async def test_events_in_one_batch_each_satisfy_their_own_wait(
    dev_server, sessions, project, plan, task_queue, figures
):
    # The product's event pipeline sends what happened in one batch: the milestone that ends
    # the current wait, and the event the *next* wait is for. Both must count.
    [customer] = seed_customers(sessions, 1)
    events = router(project, sessions, dev_server.client, task_queue)
    async with inprocess_worker(dev_server, sessions, task_queue):
        [handle] = await start_all(dev_server.client, plan, [customer], task_queue)
        await waiting_for(handle, AWAIT_MILESTONE)
        for signal in (event("integration.connected"), event("alert.created")):
            await post(events, customer, signal)
        [result] = await results([handle], timeout=30)

    assert result.outcome == "done"
    assert tasks_by_step(sessions, handle.id) == {"connected": 1, "alerted": 1}
    figures.update(batched_events=2, steps_advanced_twice=0)
