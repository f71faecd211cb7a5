"""The interpreter's paths with every activity mocked by name: no store, no mailer.

The worker registers stand-ins under the activities' names (`ActivityName`: ``send_email``,
``create_task``, ``decide``...), as temporalio/samples-python's tests/sleep_for_days does, so
these tests check what the workflow decides and what it asks of its activities, in
milliseconds of real time on the time-skipping server. The tests with the real activities
against a real store (test_onboarding.py, test_signals.py and the rest) check the effects.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from engine.client.sandbox import workflow_runner
from engine.language.plan import CompiledPlan
from engine.messages import (
    ActivityName,
    CheckMilestoneInput,
    CreateTaskInput,
    DecideInput,
    DecideResult,
    EmailDelivery,
    EnrollCustomerInput,
    EnrollmentInput,
    EnrollmentResult,
    EscalateTaskInput,
    EventSignal,
    RecordEnrollmentInput,
    SendEmailInput,
    SendEmailResult,
    TaskCompletion,
    TaskRef,
    UpdateCustomerInput,
)
from tests.helpers.harness import records, write_project
from tests.helpers.polling import eventually
from workflows.playbook import PlaybookWorkflow

CUSTOMER = "acme"
CONTACT = "ada@acme.example"
TASK_ID = "task-1"
CALL = "task 'Call Acme Corp'"
UNSUBSCRIBE = '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'

GREET = f"""\
playbook: greet
name: One email, then the end
trigger: {{manual: true}}
steps:
  - id: hello
    email:
      subject: "Hello {{{{ contact.first_name }}}}"
      body: '<p>Hi</p>{UNSUBSCRIBE}'
      send_window: anytime
  - id: done
    end: {{outcome: greeted}}
"""

# A call the CSM must log (its outcome picks the way on), then a wait for the integration
# with a nudge on timeout; a churn ends it from anywhere.
PATHS = f"""\
playbook: paths
name: A task to wait on, then a milestone to wait for
trigger: {{manual: true}}
exit: {{on_events: [customer.churned]}}
steps:
  - id: call
    task:
      title: "Call {{{{ customer.name }}}}"
      outcomes: [held, no_response]
      wait: true
      on_outcome:
        no_response: chase
  - id: await_integration
    wait_for: {{milestone: integration_connected, timeout: 7d, on_timeout: nudge}}
    next: connected
  - id: nudge
    email:
      subject: "Connect your data"
      body: '<p>It takes two minutes.</p>{UNSUBSCRIBE}'
      send_window: anytime
  - id: not_connected
    end: {{outcome: not_connected}}
  - id: chase
    email:
      subject: "We missed you"
      body: '<p>Shall we find another time?</p>{UNSUBSCRIBE}'
      send_window: anytime
  - id: chased
    end: {{outcome: chased}}
  - id: connected
    end: {{outcome: connected}}
"""


@dataclass
class MockedActivities:
    """Stand-ins for every activity of the interpreter, registered under the real names;
    each records the input it received."""

    milestones_already_reached: set[str] = field(default_factory=set)
    calls: list[tuple[str, BaseModel]] = field(default_factory=list)

    def inputs(self, name: str) -> list[Any]:
        """What the activity ``name`` received, in call order."""
        return [received for called, received in self.calls if called == name]

    def all(self) -> list[Callable[..., Any]]:
        return [
            self.decide,
            self.check_milestone,
            self.record_enrollment,
            self.send_email,
            self.create_task,
            self.escalate_task,
            self.update_customer,
            self.enroll_customer,
        ]

    @activity.defn(name=ActivityName.DECIDE)
    async def decide(self, input: DecideInput) -> DecideResult:
        self.calls.append((ActivityName.DECIDE, input))
        return DecideResult(
            found=True,
            timezone="Europe/Berlin",
            values=[False] * len(input.expressions),
            errors=[None] * len(input.expressions),
        )

    @activity.defn(name=ActivityName.CHECK_MILESTONE)
    async def check_milestone(self, input: CheckMilestoneInput) -> bool:
        self.calls.append((ActivityName.CHECK_MILESTONE, input))
        return input.milestone in self.milestones_already_reached

    @activity.defn(name=ActivityName.RECORD_ENROLLMENT)
    async def record_enrollment(self, input: RecordEnrollmentInput) -> None:
        self.calls.append((ActivityName.RECORD_ENROLLMENT, input))

    @activity.defn(name=ActivityName.SEND_EMAIL)
    async def send_email(self, input: SendEmailInput) -> SendEmailResult:
        self.calls.append((ActivityName.SEND_EMAIL, input))
        delivery = EmailDelivery(contact=CONTACT, status="captured", subject=input.email.subject)
        return SendEmailResult(deliveries=[delivery])

    @activity.defn(name=ActivityName.CREATE_TASK)
    async def create_task(self, input: CreateTaskInput) -> TaskRef:
        self.calls.append((ActivityName.CREATE_TASK, input))
        return TaskRef(task_id=TASK_ID, assignee="csm@vendor.example", title="Call Acme Corp")

    @activity.defn(name=ActivityName.ESCALATE_TASK)
    async def escalate_task(self, input: EscalateTaskInput) -> TaskRef:
        self.calls.append((ActivityName.ESCALATE_TASK, input))
        return TaskRef(task_id="task-2", assignee="boss@vendor.example", title="Escalated")

    @activity.defn(name=ActivityName.UPDATE_CUSTOMER)
    async def update_customer(self, input: UpdateCustomerInput) -> None:
        self.calls.append((ActivityName.UPDATE_CUSTOMER, input))

    @activity.defn(name=ActivityName.ENROLL_CUSTOMER)
    async def enroll_customer(self, input: EnrollCustomerInput) -> str:
        self.calls.append((ActivityName.ENROLL_CUSTOMER, input))
        return f"{input.playbook}/{input.customer_id}"


Handle = WorkflowHandle[Any, EnrollmentResult]
Start = Callable[[CompiledPlan], Awaitable[Handle]]


@asynccontextmanager
async def mocked_worker(
    env: WorkflowEnvironment, task_queue: str, mocks: MockedActivities
) -> AsyncIterator[Start]:
    """The real workflow with the mocked activities; yields a function that enrolls
    `CUSTOMER` in a plan and returns the handle (whose `result()` skips time)."""

    async def start(plan: CompiledPlan) -> Handle:
        enrollment_id = f"{plan.playbook}/{CUSTOMER}-{uuid.uuid4().hex[:6]}"
        payload = EnrollmentInput(
            plan=plan,
            customer_id=CUSTOMER,
            enrollment_id=enrollment_id,
            use_search_attributes=False,
            started_at=await env.get_current_time(),
        )
        return await env.client.start_workflow(
            PlaybookWorkflow.run, payload, id=enrollment_id, task_queue=task_queue
        )

    async with Worker(
        env.client,
        task_queue=task_queue,
        workflows=[PlaybookWorkflow],
        activities=mocks.all(),
        workflow_runner=workflow_runner(),
    ):
        yield start


async def waiting_for(handle: Handle, what: str) -> None:
    """Until the enrollment says it waits for ``what`` (no virtual time passes meanwhile)."""

    async def waits() -> bool:
        status = await handle.query(PlaybookWorkflow.status)
        return status.waiting_for == what

    await eventually(waits, 10, what=f"{handle.id} waiting for {what}")


async def hold_the_call(handle: Handle) -> None:
    """Once the enrollment waits on the call, complete it as held (on to the milestone)."""
    await waiting_for(handle, CALL)
    await handle.signal(
        PlaybookWorkflow.task_completed, TaskCompletion(task_id=TASK_ID, outcome="held")
    )


def event(name: str) -> EventSignal:
    return EventSignal(id=uuid.uuid4().hex, name=name)


@pytest.fixture
def paths(tmp_path: Path) -> CompiledPlan:
    return write_project(tmp_path / "playbooks", {"paths": PATHS}).plan("paths")


async def test_email_step_then_end(temporal_env, task_queue, tmp_path):
    plan = write_project(tmp_path / "playbooks", {"greet": GREET}).plan("greet")
    mocks = MockedActivities()
    async with mocked_worker(temporal_env, task_queue, mocks) as start:
        handle = await start(plan)
        result = await handle.result()

    assert (result.outcome, result.status, result.ended_at_step) == ("greeted", "completed", "done")
    assert [r.kind for r in result.records] == ["start", "email", "completed"]
    [email] = records(result, "email", "hello")
    assert email.detail == f"{CONTACT} (captured)"
    [sent] = mocks.inputs(ActivityName.SEND_EMAIL)
    assert (sent.enrollment_id, sent.customer_id) == (handle.id, CUSTOMER)
    assert (sent.step_id, sent.iteration) == ("hello", 1)
    assert sent.email.subject == "Hello {{ contact.first_name }}"  # rendered by the activity
    projected = [
        (r.status, r.current_step, r.outcome) for r in mocks.inputs(ActivityName.RECORD_ENROLLMENT)
    ]
    assert projected[0] == ("running", "hello", None)
    assert projected[-1] == ("completed", None, "greeted")
    assert not mocks.inputs(ActivityName.CREATE_TASK)


@pytest.mark.parametrize(
    ("outcome", "emailed", "end"),
    [("held", [], "connected"), ("no_response", ["chase"], "chased")],
)
async def test_task_outcome_picks_the_next_step(
    temporal_env, task_queue, paths, outcome, emailed, end
):
    mocks = MockedActivities()
    async with mocked_worker(temporal_env, task_queue, mocks) as start:
        handle = await start(paths)
        await waiting_for(handle, CALL)
        [created] = mocks.inputs(ActivityName.CREATE_TASK)
        assert (created.step_id, created.iteration) == ("call", 1)
        assert created.task.outcomes == ["held", "no_response"]

        await handle.signal(
            PlaybookWorkflow.task_completed,
            TaskCompletion(task_id=TASK_ID, outcome=outcome, completed_by="csm@vendor.example"),
        )
        if outcome == "held":
            await waiting_for(handle, "milestone integration_connected")
            await handle.signal(PlaybookWorkflow.event, event("integration.connected"))
        result = await handle.result()

    assert result.outcome == end
    [completed] = records(result, "task_completed", "call")
    assert completed.data == {"task_id": TASK_ID, "outcome": outcome, "by": "csm@vendor.example"}
    assert [e.step_id for e in mocks.inputs(ActivityName.SEND_EMAIL)] == emailed
    assert not mocks.inputs(ActivityName.ESCALATE_TASK)


async def test_milestone_reached_during_the_wait_goes_on(temporal_env, task_queue, paths):
    mocks = MockedActivities()
    async with mocked_worker(temporal_env, task_queue, mocks) as start:
        handle = await start(paths)
        await hold_the_call(handle)
        await waiting_for(handle, "milestone integration_connected")
        await handle.signal(PlaybookWorkflow.event, event("integration.connected"))
        result = await handle.result()

    assert (result.outcome, result.ended_at_step) == ("connected", "connected")
    [reached] = records(result, "milestone", "await_integration")
    assert reached.detail == "integration_connected reached"
    assert not records(result, "timeout")
    assert not mocks.inputs(ActivityName.SEND_EMAIL)
    # Checked once in the store before waiting (not reached yet), since the enrollment began.
    [checked] = mocks.inputs(ActivityName.CHECK_MILESTONE)
    assert checked.milestone == "integration_connected"
    assert checked.since is not None


async def test_milestone_already_reached_skips_the_wait(temporal_env, task_queue, paths):
    mocks = MockedActivities(milestones_already_reached={"integration_connected"})
    async with mocked_worker(temporal_env, task_queue, mocks) as start:
        handle = await start(paths)
        await hold_the_call(handle)
        result = await handle.result()

    assert result.outcome == "connected"
    [reached] = records(result, "milestone", "await_integration")
    assert reached.detail == "integration_connected already reached"
    assert not records(result, "wait", "await_integration")


async def test_milestone_wait_times_out_to_on_timeout(temporal_env, task_queue, paths):
    mocks = MockedActivities()
    async with mocked_worker(temporal_env, task_queue, mocks) as start:
        handle = await start(paths)
        await hold_the_call(handle)
        result = await handle.result()  # skips the 7 days

    assert (result.outcome, result.ended_at_step) == ("not_connected", "not_connected")
    [timeout] = records(result, "timeout", "await_integration")
    assert timeout.detail == "timed out, going to nudge"
    [nudge] = mocks.inputs(ActivityName.SEND_EMAIL)
    assert (nudge.step_id, nudge.email.subject) == ("nudge", "Connect your data")


async def test_exit_event_mid_wait_ends_the_enrollment(temporal_env, task_queue, paths):
    mocks = MockedActivities()
    async with mocked_worker(temporal_env, task_queue, mocks) as start:
        handle = await start(paths)
        await waiting_for(handle, CALL)
        await handle.signal(PlaybookWorkflow.event, event("customer.churned"))
        result = await handle.result()

    assert (result.outcome, result.status, result.ended_at_step) == ("exited", "exited", "call")
    assert not records(result, "task_completed")
    assert not mocks.inputs(ActivityName.SEND_EMAIL)
    last = mocks.inputs(ActivityName.RECORD_ENROLLMENT)[-1]
    # Cut short: the store is told to cancel the enrollment's open tasks.
    assert (last.status, last.outcome, last.close_open_tasks) == ("exited", "exited", True)
