"""The task lifecycle on the time-skipping server: timeout, an escalation chain on the
assignee's working days, fair role assignment (stable on replay) and undoing a completion."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Replayer

from activities.tasks import TaskActivities, member_calendar
from engine.client.sandbox import workflow_runner
from engine.errors import Conflict
from engine.language.plan import TaskPlan
from engine.messages import CreateTaskInput, EscalateTaskInput
from engine.services import Services
from engine.services import tasks as task_service
from engine.settings import Settings
from engine.store.models import Task, TeamMember
from tests.helpers.harness import MANAGER, OWNER, records, running, seed_customer, write_project
from workflows.playbook import PlaybookWorkflow

OPS = "ops@vendor.example"
LIFECYCLE = """\
playbook: lifecycle
name: A task with a chain and a timeout
trigger: {manual: true}
steps:
  - id: call
    task:
      title: "Call {{ customer.name }}"
      outcomes: [held, skipped]
      wait: true
      timeout: 30d
      on_timeout: skipped
      escalate:
        - {to: owner, after: 1d}
        - {to: manager, after: 1d}
        - {to: ops@vendor.example, after: 2d}
      on_outcome:
        skipped: gave_up
  - id: linger
    wait: {for: 30d}
  - id: done
    end: {outcome: held}
  - id: gave_up
    end: {outcome: skipped}
"""
FAIR = """\
playbook: %s
name: Triage by whoever's turn it is
trigger: {manual: true}
steps:
  - id: triage
    task: {title: "Triage {{ customer.name }}", assignee: "role:support", assign: %s}
  - id: done
    end: {}
"""
SECOND = timedelta(seconds=1)
MINUTE = timedelta(minutes=1)
SUPPORT = ["a@vendor.example", "b@vendor.example", "c@vendor.example"]


def _zone_owner(sessions, zone: str, off: tuple[date, date] | None) -> TeamMember:
    with sessions.begin() as session:
        owner = session.get(TeamMember, OWNER)
        owner.timezone = zone
        owner.time_off = [[off[0].isoformat(), off[1].isoformat()]] if off else []
        session.flush()
        session.expunge(owner)
        return owner


async def test_the_chain_fires_on_working_days_and_the_timeout_assumes_an_outcome(
    temporal_env, sessions, task_queue, customer_id, tmp_path: Path
):
    project = write_project(tmp_path / "p", {"lifecycle": LIFECYCLE})
    seed_customer(sessions, customer_id)
    zone = "America/New_York"
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        start = (await h.now()).astimezone(ZoneInfo(zone)).date()
        owner = _zone_owner(sessions, zone, (start + timedelta(days=1), start + timedelta(days=3)))
        handle = await h.start(project.plan("lifecycle"))
        [task] = await h.until(lambda: h.tasks("call"), step=timedelta(minutes=1))
        # The task's row is written by the activity; the enrollment records it once the
        # activity's result reaches it, a moment later.
        status = await h.until_status(
            handle, lambda s: bool(records(s, "task", "call")), step=SECOND, limit=MINUTE
        )
        created = records(status, "task", "call")[0]
        calendar = member_calendar(owner)
        expected, at = [], created.at
        for after in (1, 1, 2):
            at = calendar.add(at, after * 86_400)
            expected.append(at)
        recorded = [datetime.fromisoformat(t) for t in created.data["escalate_at"]]
        assert all(
            abs(r - e) < timedelta(minutes=1) for r, e in zip(recorded, expected, strict=True)
        )
        # Time off and weekends push the first link past a calendar day.
        assert recorded[0] - created.at > timedelta(days=3)

        result = await h.result(handle)

    assert result.outcome == "skipped"
    fired = records(result, "task_escalated", "call")
    assert [r.detail for r in fired] == [f"escalated to {to}" for to in ("owner", "manager", OPS)]
    for record, when in zip(fired, recorded, strict=True):
        assert abs(record.at - when) < timedelta(minutes=1)
    escalations = sorted(
        (t for t in h.tasks("call") if t.escalation_of == task.id), key=lambda t: t.idempotency_key
    )
    assert [t.assignee_email for t in escalations] == [OWNER, MANAGER, OPS]
    [timed_out] = records(result, "task_timed_out", "call")
    assert timed_out.data["next"] == "gave_up"
    closed = h.task(task.id)
    assert closed.status == "cancelled" and "timed out" in (closed.cancel_reason or "")


async def test_role_tasks_go_round_robin_or_to_the_least_busy_and_replay_the_same(
    temporal_env, sessions, task_queue, tmp_path: Path
):
    project = write_project(
        tmp_path / "p",
        {"fair": FAIR % ("fair", "round_robin"), "fair_least": FAIR % ("fair_least", "least_open")},
    )
    customers = [f"fair-{i}" for i in range(5)]
    for customer in customers:
        seed_customer(sessions, customer)
    with sessions.begin() as session:
        for email in SUPPORT:
            session.add(TeamMember(email=email, name=email[0].upper(), roles=["support"]))
        session.add(TeamMember(email="z@vendor.example", name="Z", roles=["support"]))
        session.flush()
        session.get(TeamMember, "z@vendor.example").disabled_at = datetime.now().astimezone()
    async with running(temporal_env, sessions, task_queue) as h:
        handles = []
        for customer in customers[:4]:
            handle = await h.start(project.plan("fair"), customer)
            await h.result(handle)
            handles.append(handle)
        handle = await h.start(project.plan("fair_least"), customers[4])
        await h.result(handle)
        handles.append(handle)
        histories = [await h_.fetch_history() for h_ in handles]

    by_customer = {t.customer_id: t for t in h.tasks("triage")}
    picked = [by_customer[c].assignee_email for c in customers]
    # Round-robin in address order, skipping the disabled member; then the least busy (b
    # and c hold one open task each, a two: b, the first of the tie).
    assert picked == [*SUPPORT, SUPPORT[0], SUPPORT[1]]
    assert [by_customer[c].assigned_by for c in customers] == ["round_robin"] * 4 + ["least_open"]
    await _replays(histories)


async def _replays(histories: list[WorkflowHistory]) -> None:
    replayer = Replayer(
        workflows=[PlaybookWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(),
    )
    for history in histories:
        result = await replayer.replay_workflow(history)
        assert result.replay_failure is None


def test_the_assignment_is_decided_once_per_task_key(sessions):
    seed_customer(sessions, "once")
    with sessions.begin() as session:
        for email in SUPPORT:
            session.add(TeamMember(email=email, name=email[0].upper(), roles=["support"]))
    activities = TaskActivities(sessions)
    plan = TaskPlan(title="Triage", assignee="role:support", outcomes=["done"])
    now = datetime.now().astimezone()

    def create(iteration: int) -> str | None:
        task_input = CreateTaskInput(
            enrollment_id="fair/once",
            playbook="fair",
            step_id="triage",
            iteration=iteration,
            customer_id="once",
            task=plan,
            now=now,
        )
        return ActivityEnvironment().run(activities.create_task, task_input).assignee

    first = create(0)
    assert [create(0), create(0)] == [first, first]  # retries: same member, no turn used
    assert create(1) == SUPPORT[SUPPORT.index(first) + 1]


def test_a_task_and_its_escalation_keep_the_key_of_the_run_that_made_it(sessions):
    """The reports find a task's version by it: the workflow ID repeats across runs."""
    seed_customer(sessions, "keyed")
    activities = TaskActivities(sessions)
    made = ActivityEnvironment().run(
        activities.create_task,
        CreateTaskInput(
            enrollment_id="keyed/x", enrollment_key="keyed/x#2", playbook="keyed",
            step_id="call", iteration=0, customer_id="keyed",
            task=TaskPlan(title="Call", outcomes=["done"]), now=datetime.now().astimezone(),
        ),
    )  # fmt: skip
    escalated = ActivityEnvironment().run(
        activities.escalate_task,
        EscalateTaskInput(
            task_id=made.task_id, enrollment_id="keyed/x", playbook="keyed", step_id="call",
            customer_id="keyed", escalate_to=MANAGER, now=datetime.now().astimezone(),
        ),
    )  # fmt: skip
    with sessions() as session:
        keys = {t.id: t.run_key for t in session.scalars(select(Task))}
    assert keys == {made.task_id: "keyed/x#2", escalated.task_id: "keyed/x#2"}


async def test_a_completion_can_be_undone_until_the_enrollment_acts_on_it(
    temporal_env, sessions, task_queue, customer_id, tmp_path: Path
):
    project = write_project(tmp_path / "p", {"lifecycle": LIFECYCLE})
    seed_customer(sessions, customer_id)
    settings = Settings(task_undo_seconds=600)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        svc = Services(settings, sessions, temporal_env.client, project)
        handle = await h.start(project.plan("lifecycle"))
        [task] = await h.until(lambda: h.tasks("call"), step=timedelta(minutes=1))

        await task_service.complete_task(svc, task.id, "skipped", OWNER)
        await h.until_waiting(handle, "undo window", step=SECOND, limit=MINUTE)
        reopened = await task_service.undo_completion(svc, task.id, OWNER)
        assert reopened.status == "open" and reopened.outcome is None
        status = await h.until_waiting(handle, "task 'Call", step=SECOND, limit=MINUTE)
        assert records(status, "task_reopened", "call")

        completed = await task_service.complete_task(svc, task.id, "held", OWNER)
        assert completed.undo_until is not None
        # The window passes in virtual time and the enrollment goes on with 'held'.
        status = await h.until_step(handle, "linger", step=timedelta(minutes=5))
        assert records(status, "task_completed", "call")[-1].detail == "held"
        # The store's clock still says "within the window", but the enrollment has acted
        # on the completion: the undo is refused and the task stays completed.
        with pytest.raises(Conflict, match="already acted"):
            await task_service.undo_completion(svc, task.id, OWNER)
    assert h.task(task.id).status == "completed"
    assert [c.body for c in task_service.task_comments(svc, task.id)] == [
        "Reopened (completion undone)."
    ]
