"""The baseline: `bench/playbooks/five_step.yaml` written by hand as a plain Temporal workflow.

This is what a team would write without the engine: one workflow class per playbook, the
steps in code. It calls the engine's own activities (`PlaybookActivities`, registered on
the same worker setup, against the same store: emails captured to the outbox, tasks
written to the tasks table) with the same inputs, options and order as the interpreter,
sets the same search attributes and keeps the same store projection, so that the only
thing a benchmark measures between the two is the interpreter itself: the compiled plan in
the input, the step records, the event inbox, and walking from step to step.

`check_matches_plan` verifies before every benchmark run that the constants here still say
what the YAML says, so the two cannot drift apart silently.
"""

from __future__ import annotations

import contextlib
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from engine.errors import NON_RETRYABLE_ERROR_TYPES
    from engine.language.plan import CompiledPlan, EmailPlan, MilestonePlan, TaskPlan
    from engine.messages import (
        SA_STEP,
        ActivityName,
        CheckMilestoneInput,
        CreateTaskInput,
        DecideInput,
        DecideResult,
        EventSignal,
        RecordEnrollmentInput,
        SendEmailInput,
        SendEmailResult,
        SignalName,
        StepEntry,
        TaskRef,
    )
    from engine.statuses import EnrollmentStatus

BASELINE_WORKFLOW = "BenchBaselineWorkflow"
BASELINE_PREFIX = "bench_baseline"
PLAYBOOK = "bench_five_step"
VERSION = "hand-written"

WELCOME = EmailPlan(
    subject="Welcome to Acme, {{ contact.first_name }}",
    html_template="inline/welcome.html",
    files=["inline/welcome.html"],
)
KICKOFF = TaskPlan(
    title="Kickoff call with {{ customer.name }}", due_seconds=3 * 86400, outcomes=["done"]
)
PAUSE = timedelta(seconds=1)
MILESTONE = MilestonePlan(name="bench_activated", event="bench.activated")
ACTIVATION_TIMEOUT = timedelta(days=7)
ACTIVATED = EmailPlan(
    subject="Nice work, {{ contact.first_name }}",
    html_template="inline/activated.html",
    files=["inline/activated.html"],
)
TEMPLATES = {
    "inline/welcome.html": "<p>Hello {{ contact.first_name }}, {{ customer.name }} is set up.</p>",
    "inline/activated.html": "<p>{{ customer.name }} is activated.</p>",
}

# The same activity options the interpreter uses (a team would pick similar ones).
EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)
LOCAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)
# Effect activities heartbeat (activities/heartbeat.py); a killed worker is noticed this soon.
EFFECT_HEARTBEAT = timedelta(seconds=10)
STEP_KEY = SearchAttributeKey.for_keyword(SA_STEP)


class BaselineInput(BaseModel):
    customer_id: str
    enrollment_id: str
    # The run's key, the prefix of its email and task idempotency keys (as `enroll` sets it).
    enrollment_key: str
    started_at: datetime


def baseline_id(customer_id: str) -> str:
    return f"{BASELINE_PREFIX}/{customer_id}"


@workflow.defn(name=BASELINE_WORKFLOW)
class BaselineWorkflow:
    """welcome email -> kickoff task -> wait 1 s -> wait for bench_activated -> email."""

    @workflow.init
    def __init__(self, input: BaselineInput) -> None:
        self.input = input
        self.activated = False
        # Steps entered since the last projection write: the reports' step visits ride along
        # with the next `record_enrollment`, as the interpreter sends them.
        self.entered: list[StepEntry] = []

    @workflow.signal(name=SignalName.EVENT)
    def event(self, event: EventSignal) -> None:
        """The same signal the event router sends to every running enrollment."""
        if event.name == MILESTONE.event:
            self.activated = True

    @workflow.run
    async def run(self, input: BaselineInput) -> str:
        decision: DecideResult = await workflow.execute_local_activity(
            ActivityName.DECIDE,
            DecideInput(
                customer_id=input.customer_id,
                playbook=PLAYBOOK,
                expressions=[],
                now=workflow.now(),
            ),
            result_type=DecideResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL_RETRY,
        )
        if not decision.found:
            return "exited"
        await self._project(EnrollmentStatus.RUNNING, "welcome", started=True)

        self._enter("welcome")
        await self._email("welcome", WELCOME)

        self._enter("kickoff")
        await workflow.execute_activity(
            ActivityName.CREATE_TASK,
            CreateTaskInput(
                enrollment_id=input.enrollment_id,
                enrollment_key=input.enrollment_key,
                playbook=PLAYBOOK,
                step_id="kickoff",
                iteration=1,
                customer_id=input.customer_id,
                task=KICKOFF,
                now=workflow.now(),
            ),
            result_type=TaskRef,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=EFFECT_RETRY,
            heartbeat_timeout=EFFECT_HEARTBEAT,
        )

        # The wait counts from the start of the step, as the playbook's does: a slow
        # projection write before the timer does not make the wait longer.
        self._enter("pause")
        until = workflow.now() + PAUSE
        await self._mark("pause")
        if until > workflow.now():
            await workflow.sleep(until - workflow.now())

        self._enter("await_activation")
        reached: bool = await workflow.execute_local_activity(
            ActivityName.CHECK_MILESTONE,
            CheckMilestoneInput(
                customer_id=input.customer_id,
                milestone=MILESTONE.name,
                definition=MILESTONE.model_dump(mode="json"),
                since=input.started_at,
            ),
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL_RETRY,
        )
        if not reached:
            await self._mark("await_activation")
            # Like the playbook: on timeout, go on to the next step.
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self.activated, timeout=ACTIVATION_TIMEOUT)

        self._enter("activated")
        await self._email("activated", ACTIVATED)

        workflow.upsert_search_attributes([STEP_KEY.value_set("end")])
        # Like the interpreter: a completed enrollment leaves its tasks open (only one cut
        # short closes them).
        await self._project(EnrollmentStatus.COMPLETED, None, outcome="completed")
        return "completed"

    async def _email(self, step_id: str, email: EmailPlan) -> SendEmailResult:
        result: SendEmailResult = await workflow.execute_activity(
            ActivityName.SEND_EMAIL,
            SendEmailInput(
                enrollment_id=self.input.enrollment_id,
                enrollment_key=self.input.enrollment_key,
                playbook=PLAYBOOK,
                version=VERSION,
                step_id=step_id,
                iteration=1,
                customer_id=self.input.customer_id,
                email=email,
                templates={name: TEMPLATES[name] for name in email.files},
                now=workflow.now(),
                # Each recipient's own send window and the delivery policy (none here), as
                # the interpreter asks for every enrollment started since respectful delivery.
                per_recipient=True,
            ),
            result_type=SendEmailResult,
            start_to_close_timeout=timedelta(minutes=2),
            schedule_to_close_timeout=timedelta(days=1),
            retry_policy=EFFECT_RETRY,
            heartbeat_timeout=EFFECT_HEARTBEAT,
        )
        return result

    def _enter(self, step_id: str) -> None:
        self.entered.append(StepEntry(step=step_id, visit=1, at=workflow.now()))

    async def _mark(self, step_id: str) -> None:
        workflow.upsert_search_attributes([STEP_KEY.value_set(step_id)])
        await self._project(EnrollmentStatus.RUNNING, step_id)

    async def _project(
        self,
        status: EnrollmentStatus,
        step: str | None,
        outcome: str | None = None,
        close_open_tasks: bool = False,
        started: bool = False,
    ) -> None:
        visits, self.entered = self.entered, []
        await workflow.execute_local_activity(
            ActivityName.RECORD_ENROLLMENT,
            RecordEnrollmentInput(
                enrollment_id=self.input.enrollment_id,
                enrollment_key=self.input.enrollment_key,
                playbook=PLAYBOOK,
                version=VERSION,
                customer_id=self.input.customer_id,
                status=status,
                current_step=step,
                outcome=outcome,
                at=workflow.now(),
                close_open_tasks=close_open_tasks,
                started=started,
                visits=visits,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL_RETRY,
        )


def check_matches_plan(plan: CompiledPlan) -> None:
    """Raise if the hand-written constants no longer do what the YAML says."""
    problems: list[str] = []

    def same(what: str, ours: Any, theirs: Any) -> None:
        if ours != theirs:
            problems.append(f"{what}: baseline has {ours!r}, the playbook {theirs!r}")

    same("playbook", PLAYBOOK, plan.playbook)
    same(
        "steps",
        ["welcome", "kickoff", "pause", "await_activation", "activated"],
        [s.id for s in plan.steps],
    )
    steps = {s.id: s for s in plan.steps}
    same("welcome", WELCOME, steps["welcome"].email)
    same("kickoff", KICKOFF, steps["kickoff"].task)
    same("pause", PAUSE.total_seconds(), steps["pause"].wait and steps["pause"].wait.seconds)
    wait_for = steps["await_activation"].wait_for
    same(
        "milestone",
        MILESTONE,
        plan.milestones.get(wait_for.milestone if wait_for and wait_for.milestone else ""),
    )
    same("timeout", ACTIVATION_TIMEOUT.total_seconds(), wait_for and wait_for.timeout_seconds)
    same("activated", ACTIVATED, steps["activated"].email)
    same("templates", TEMPLATES, plan.templates)
    same("sender", None, plan.sender)
    same("window", None, plan.window)
    if problems:
        raise RuntimeError("bench/baseline.py differs from five_step.yaml: " + "; ".join(problems))
