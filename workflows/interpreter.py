"""`Interpreter`: the logic of `PlaybookWorkflow`, shared by every workflow instance.

`workflows/playbook.py` defines the workflow type; each of its methods delegates to an
`Interpreter`, which holds the enrollment's state and walks the compiled plan: steps,
waits, events, decisions, the store projection and continue-as-new. The workflow module
imports this one with `workflow.unsafe.imports_passed_through()`, so Temporal's sandbox
does not import it again for each workflow instance: every cached workflow shares one copy
of its code instead of carrying its own (docs/architecture.md, "Why the interpreter is
passed through").

The code still runs as workflow code: the `temporalio.workflow` calls below find the
running workflow through the event loop, and everything here must be deterministic (no
I/O, no wall clock, no randomness; effects and reads of customer data go through
activities). The sandbox no longer checks that for this module, so
`tests/workflows/test_interpreter_module.py` does: it limits what this module imports and
refuses calls to clocks, random numbers and uuids. The replay tests check that the
commands it issues have not changed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError

from engine.errors import NON_RETRYABLE_ERROR_TYPES
from engine.language.plan import END, CompiledPlan, StepPlan
from engine.language.sendwindow import local_datetime, next_opening
from engine.messages import (
    SA_STEP,
    ActivityName,
    CancelRequest,
    CheckMilestoneInput,
    CloseTaskInput,
    CreateTaskInput,
    CustomerChanged,
    DecideInput,
    DecideResult,
    EmailDelivery,
    EnrollCustomerInput,
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentSnapshot,
    EscalateTaskInput,
    EventSignal,
    InterpreterState,
    LocalTime,
    MigrateRequest,
    NotifyInput,
    NotifyResult,
    RecordEnrollmentInput,
    SendEmailInput,
    SendEmailResult,
    SkipRequest,
    StepEntry,
    StepRecord,
    TaskCompletion,
    TaskRef,
    TaskReopen,
    UpdateCustomerInput,
)
from engine.statuses import EnrollmentStatus, OutboxStatus

MAX_RECORDS = 300
MAX_SEEN_EVENTS = 2_000
MAX_UNCLAIMED_EVENTS = 50
# An event for a `wait_for: event` step that arrives before the step starts waiting (in the
# same batch as the milestone ending the wait before it, or while earlier steps run) counts.
# Reliability suite, fault 6: before, `_drain` consumed it while no step waited for it, and
# the enrollment then waited for a second one until its timeout.
PATCH_EVENTS_BEFORE_WAIT = "events-before-wait-count"
STEP_KEY = SearchAttributeKey.for_keyword(SA_STEP)
# `workflow.patched` ids of behaviour changes to the interpreter (see the replay tests).
PATCH_PAUSED_WAKES_ON_EVENTS = "paused-wakes-on-events"
# A completion sent with an undo window is held that long (and can be reopened) before the
# enrollment acts on it; histories recorded before undo acted at once.
PATCH_TASK_UNDO = "task-undo-window"
# Respectful delivery (docs/delivery.md): the `send_email` activity applies the send window in
# each recipient's zone and calendar and the delivery policy's caps; the workflow waits for
# the postponed recipients and calls it again, instead of waiting for the customer's window.
PATCH_PER_RECIPIENT_DELIVERY = "per-recipient-delivery"
WINDOW_REASON = "outside the send window"  # how send_email words a send-window postponement
# A `wait: until ... at:` right before an email to contacts waits for the first recipient's
# local time, and the email then waits for each recipient's own (docs/delivery.md).
PATCH_RECIPIENT_LOCAL_AT = "recipient-local-at"
LOCAL_TIME_REASON = "waiting for the recipient's local time"  # as send_email words it

# A `customer_changed` signal re-evaluates a running `wait: until` (its deadline follows a
# moved date) and the cycle's trigger date (a move past the cycle's anchor ends it). Before,
# the signal did not exist: a history in which one arrived unhandled must replay unchanged.
PATCH_DATES_FOLLOW_CUSTOMER = "dates-follow-customer"
# Conditions over customer data that a change can make true while the enrollment waits:
# `exit: if`, `goal: when` and the running `wait_for: when`, judged again (one `decide`) on
# each `customer_changed` signal. Before, only dates were: histories in which a signal reached
# a plan with an exit condition must replay without the new decision.
PATCH_CHANGE_CONDITIONS = "change-ends-waits-goals-exits"
# The `migrate` update (`playbook deploy --migrate`): a running enrollment continues in a new
# version of its playbook at the next step boundary; a `wait`/`wait_for` is left at once and
# entered again in the new version with its deadline kept. Marked in every history it acts in.
PATCH_MIGRATE = "migrate-running-enrollments"
MIGRATES_WAITS = ("wait", "wait_for")
# The outcome of a date-triggered enrollment whose cycle a moved anchor date ended (a renewal
# that happened: the renewal date moved a year ahead).
ANCHOR_MOVED = "anchor_moved"
# The generation (`EnrollmentInput.generation`, `INTERPRETER_GENERATION`) from which each
# change is the only behaviour: an enrollment started at that generation or later has it from
# its first step, so its history carries no patch marker (nor the search-attribute upsert that
# comes with one) and is as long as a hand-written workflow's. Older histories, generation 0,
# still ask `workflow.patched`. `PATCH_MIGRATE` stays out: it marks the histories it acts in.
PATCH_GENERATIONS: dict[str, int] = {
    PATCH_EVENTS_BEFORE_WAIT: 1,
    PATCH_PAUSED_WAKES_ON_EVENTS: 1,
    PATCH_TASK_UNDO: 1,
    PATCH_PER_RECIPIENT_DELIVERY: 1,
    PATCH_RECIPIENT_LOCAL_AT: 1,
    PATCH_DATES_FOLLOW_CUSTOMER: 1,
    PATCH_CHANGE_CONDITIONS: 1,
}
# A `_step_<kind>` method: runs one step and returns the id of the next.
StepHandler = Callable[[StepPlan, int, list[Any]], Awaitable[str]]

EFFECT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=list(NON_RETRYABLE_ERROR_TYPES),
)
# Effect activities heartbeat every 2 s (activities/heartbeat.py); a worker killed mid-activity
# is noticed after this long instead of the start-to-close timeout (minutes). Timeouts are not
# part of the determinism check, so running enrollments pick this up safely.
EFFECT_HEARTBEAT = timedelta(seconds=10)
LOCAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30)
)


class _Finish(Exception):
    """Internal: the enrollment ends now with this outcome."""

    def __init__(self, outcome: str, status: EnrollmentStatus, reason: str | None = None) -> None:
        self.outcome = outcome
        self.status = status
        self.reason = reason


class Interpreter:
    """Interprets a `CompiledPlan` for one customer, from its first step to an outcome.

    One per workflow instance, created by `PlaybookWorkflow.__init__`. The public methods
    are the bodies of the workflow's run, signal, update, validator and query handlers.
    """

    def __init__(self, input: EnrollmentInput) -> None:
        self.input = input
        self.plan: CompiledPlan = input.plan
        self.state = input.state or InterpreterState(current=input.plan.start)
        self.inbox: list[EventSignal] = []
        self.completions: dict[str, TaskCompletion] = {}
        # Tasks whose completion (or timeout) the enrollment acted on: no longer undoable.
        self.accepted_tasks: set[str] = set()
        self.finish: _Finish | None = None
        self.skip_to: str | None = None
        self.waiting_for: str | None = None
        self.waiting_until: datetime | None = None
        # The zones of the customer's contacts, when the last decision asked for them, and
        # the local time of a `wait ... at:` whose date moved while it waited.
        self.zones: list[str] = []
        self._retimed_at: LocalTime | None = None
        self.wait_event: str | None = None
        self.wait_event_condition: str | None = None
        self.wait_event_hit: EventSignal | None = None
        self.goal_candidates: list[EventSignal] = []
        self.outcome: str | None = None
        # A `customer_changed` signal arrived that the next (or current) wait has not handled.
        self.customer_changed_pending = False
        # A change arrived that the conditions of `PATCH_CHANGE_CONDITIONS` have not been
        # judged on yet, and the running `wait_for: when` (its condition, and whether it held).
        self.conditions_pending = False
        self.wait_when: str | None = None
        self.wait_when_held = False
        # A `migrate` update not applied yet, and the deadline a left wait carries over.
        self.migration: MigrateRequest | None = None
        self.carried_deadline: tuple[str, datetime | None] | None = None

    # -- signals, updates, query -------------------------------------------------------
    def event(self, event: EventSignal) -> None:
        """A lifecycle or usage event for this customer; the same id counts once."""
        if event.id in self.state.seen_event_ids:
            return
        self.state.seen_event_ids.append(event.id)
        del self.state.seen_event_ids[:-MAX_SEEN_EVENTS]
        self.inbox.append(event)

    def task_completed(self, completion: TaskCompletion) -> None:
        """A CSM completed a task this enrollment created."""
        self.completions.setdefault(completion.task_id, completion)

    def reopen_task(self, request: TaskReopen) -> None:
        """Take back a completion the enrollment has not acted on (the CSM's undo)."""
        self.completions.pop(request.task_id, None)

    def validate_reopen_task(self, request: TaskReopen) -> None:
        """Refuse once the enrollment has acted on the completion (moved on)."""
        if request.task_id in self.accepted_tasks:
            raise ValueError("the enrollment has already acted on this completion")
        if self.finish is not None:
            raise ValueError("the enrollment is ending")

    def customer_changed(self, change: CustomerChanged) -> None:
        """The customer's data changed: the running wait re-evaluates its date."""
        if change.dates_may_have_moved and self._patched(PATCH_DATES_FOLLOW_CUSTOMER):
            self.customer_changed_pending = True
        if self._change_conditions() and self._patched(PATCH_CHANGE_CONDITIONS):
            self.conditions_pending = True

    def pause(self) -> EnrollmentSnapshot:
        """Hold the enrollment before its next step (waits keep their deadlines)."""
        self.state.paused = True
        return self.status()

    def resume(self) -> EnrollmentSnapshot:
        """Let a paused enrollment go on."""
        self.state.paused = False
        return self.status()

    def validate_pause(self) -> None:
        """Refuse to pause an enrollment that is already paused."""
        if self.state.paused:
            raise ValueError("the enrollment is already paused")

    def validate_resume(self) -> None:
        """Refuse to resume an enrollment that is not paused."""
        if not self.state.paused:
            raise ValueError("the enrollment is not paused")

    def skip_to_step(self, request: SkipRequest) -> EnrollmentSnapshot:
        """Leave the current step (or wait) and continue at another step."""
        self.skip_to = request.step
        self._record(
            self.state.current, "skip", f"skipped to {request.step}", {"reason": request.reason}
        )
        return self.status()

    def validate_skip(self, request: SkipRequest) -> None:
        """Refuse an unknown step, or a skip once the enrollment is ending."""
        if request.step != END and request.step not in {s.id for s in self.plan.steps}:
            known = ", ".join(s.id for s in self.plan.steps)
            raise ValueError(f"no step '{request.step}' in {self.plan.playbook}; steps: {known}")
        if self.finish is not None:
            raise ValueError("the enrollment is already ending")

    def migrate(self, request: MigrateRequest) -> EnrollmentSnapshot:
        """Continue in ``request.plan`` from the next step boundary (a wait: at once)."""
        workflow.patched(PATCH_MIGRATE)
        self.migration = request
        return self.status()

    def validate_migrate(self, request: MigrateRequest) -> None:
        """Refuse another playbook, a current step the new version has no mapping for, or a
        migration while one is pending or the enrollment is ending."""
        if self.finish is not None:
            raise ValueError("the enrollment is already ending")
        if self.migration is not None:
            raise ValueError("a migration is already pending")
        if request.plan.playbook != self.plan.playbook:
            raise ValueError(f"{request.plan.playbook} is not {self.plan.playbook}")
        target = request.mapping.get(self.state.current, self.state.current)
        if target != END and target not in {s.id for s in request.plan.steps}:
            raise ValueError(
                f"step {self.state.current} has no mapping: no step '{target}' in version "
                f"{request.plan.short_version}"
            )

    def cancel(self, request: CancelRequest) -> EnrollmentSnapshot:
        """Stop the enrollment now with outcome 'cancelled'."""
        self.finish = _Finish("cancelled", EnrollmentStatus.CANCELLED, request.reason)
        return self.status()

    def validate_cancel(self, request: CancelRequest) -> None:
        """Refuse to cancel an enrollment that is already ending."""
        if self.finish is not None:
            raise ValueError("the enrollment is already ending")

    def status(self) -> EnrollmentSnapshot:
        """Where the enrollment stands: current step, what it waits for and until when."""
        return EnrollmentSnapshot(
            enrollment_id=self.input.enrollment_id,
            playbook=self.plan.playbook,
            version=self.plan.version,
            customer_id=self.input.customer_id,
            current_step=None if self.outcome else self.state.current,
            waiting_for=self.waiting_for,
            waiting_until=self.waiting_until,
            paused=self.state.paused,
            steps_done=self.state.steps_done,
            milestones=list(self.state.tracker.reached),
            outcome=self.outcome,
            records=list(self.state.records),
        )

    # -- the interpreter ---------------------------------------------------------------
    async def run(self) -> EnrollmentResult:
        """The workflow's run: start, walk the steps, and end with an outcome."""
        first_run = self.input.state is None
        try:
            if first_run:
                await self._start()
            while True:
                await self._drain()
                self._raise_if_finished()
                if self.migration is not None:
                    await self._apply_migration(self.migration)
                if self.skip_to is not None:
                    self.state.current, self.skip_to = self.skip_to, None
                if self.state.current == END:
                    raise _Finish("completed", EnrollmentStatus.COMPLETED)
                if self.state.paused:
                    # A paused enrollment still listens: an exit or goal event must end it
                    # ("from whatever step it is in"), so wake for queued events too and let
                    # the top of the loop drain them. Before this fix a paused enrollment
                    # ignored `customer.churned` until resumed; guarded by a patch so
                    # histories recorded before it still replay.
                    wake_on_events = self._patched(PATCH_PAUSED_WAKES_ON_EVENTS)

                    def unpaused(wake: bool = wake_on_events) -> bool:
                        return (
                            not self.state.paused
                            or self.finish is not None
                            or (wake and bool(self.inbox))
                        )

                    await workflow.wait_condition(unpaused)
                    continue
                if self._history_is_long():
                    self._continue_as_new()
                step = self.plan.step(self.state.current)
                self.state.current = await self._run_step(step)
                self.state.steps_done += 1
        except _Finish as done:
            return await self._end(done)

    async def _apply_migration(self, request: MigrateRequest) -> None:
        """Switch to the new version at this step boundary, at the mapped step; the
        milestones, visits, records and seen events stay; nothing is sent again."""
        self.migration = None
        current = self.state.current
        target = request.mapping.get(current, current)
        if target != END and target not in {s.id for s in request.plan.steps}:
            self._record(
                current,
                "migrate_refused",
                f"no step '{target}' in version {request.plan.short_version}",
            )
            self.carried_deadline = None
            return
        was = self.plan.short_version
        self.plan = request.plan
        self.input = self.input.model_copy(update={"plan": request.plan})
        self.state.current = target
        if self.carried_deadline is not None:
            self.carried_deadline = (target, self.carried_deadline[1])
        self._record(
            target,
            "migrated",
            f"migrated from version {was} to {request.plan.short_version} at {target}",
            {"from": was, "to": request.plan.short_version, "step": current},
        )
        await self._project(EnrollmentStatus.RUNNING, target)

    def _carried(self, step_id: str) -> tuple[bool, datetime | None]:
        """The deadline a migrated wait carries into ``step_id``, once (found, deadline)."""
        carried, self.carried_deadline = self.carried_deadline, None
        if carried is not None and carried[0] == step_id:
            return True, carried[1]
        return False, None

    def _migrating(self, step_id: str) -> bool:
        return self.migration is not None and self.plan.step(step_id).kind in MIGRATES_WAITS

    async def _start(self) -> None:
        self._record(
            self.plan.start,
            "start",
            f"enrolled in {self.plan.playbook} (version {self.plan.short_version})",
        )
        await self._decide([], None)
        goal = self.plan.goal
        if goal and goal.milestone and await self._milestone_reached(goal.milestone):
            raise _Finish(
                "goal_reached",
                EnrollmentStatus.GOAL_REACHED,
                f"milestone {goal.milestone} already reached",
            )
        await self._project(EnrollmentStatus.RUNNING, self.plan.start, started=True)

    async def _run_step(self, step: StepPlan) -> str:
        iteration = self.state.visits.get(step.id, 0) + 1
        self.state.visits[step.id] = iteration
        exprs: list[str] = []
        exit_cond = self.plan.exit.condition if self.plan.exit else None
        if exit_cond:
            exprs.append(exit_cond)
        goal_when = self.plan.goal.when if self.plan.goal else None
        if goal_when:
            exprs.append(goal_when)
        if step.condition:
            exprs.append(step.condition)
        if step.branch:
            exprs += [c.condition for c in step.branch.cases]
        if step.wait and step.wait.until:
            exprs.append(step.wait.until)
        if step.kind != "email":  # a `wait ... at:` time is for the email right after it
            self.state.local_at = None
        values: list[Any] = []
        if exprs:
            zones = self._before_contact_email(step)
            decision = await self._decide(exprs, self.input.trigger_event, contact_zones=zones)
            values = list(decision.values)
            self.zones = decision.zones
            if exit_cond and values.pop(0) is True:
                raise _Finish(
                    "exited", EnrollmentStatus.EXITED, f"exit condition holds: {exit_cond}"
                )
            if goal_when and values.pop(0) is True:
                raise _Finish(
                    "goal_reached", EnrollmentStatus.GOAL_REACHED, f"goal holds: {goal_when}"
                )
            if step.condition and values.pop(0) is not True:
                self._record(step.id, "skipped", f"if: {step.condition} is false")
                return step.next
        self.state.unreported_visits.append(
            StepEntry(step=step.id, visit=iteration, at=self._now())
        )
        handler: StepHandler = getattr(self, f"_step_{step.kind}")
        return await handler(step, iteration, values)

    # -- step kinds ----------------------------------------------------------------------
    async def _step_email(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        assert step.email is not None
        if self._patched(PATCH_PER_RECIPIENT_DELIVERY):
            return await self._deliver_email(step, iteration)
        now = self._now()
        opens = next_opening(now, self.state.timezone, step.email.window)
        if opens > now:
            self._record(
                step.id, "wait", "waiting for the send window", {"until": opens.isoformat()}
            )
            if await self._wait(step.id, "send window", opens, lambda: False) == "interrupted":
                return self._interrupted_next(step)
        result = await self._send_email(step, iteration, per_recipient=False)
        if result is None:
            return step.next
        self._record(
            step.id,
            "email",
            result.summary,
            {"deliveries": [d.model_dump(mode="json") for d in result.deliveries]},
        )
        return step.next

    async def _deliver_email(self, step: StepPlan, iteration: int) -> str:
        """Send the email, waiting for every recipient the activity postponed, then go on.

        Recipients already sent are found in the outbox by the activity and not sent again.
        """
        assert step.email is not None
        recorded: set[str] = set()  # recipients already in an `email` record of this step
        while True:
            result = await self._send_email(step, iteration, per_recipient=True)
            if result is None:
                self.state.local_at = None
                return step.next
            postponed = [d for d in result.deliveries if d.status == OutboxStatus.POSTPONED]
            done = [
                d
                for d in result.deliveries
                if d.status != OutboxStatus.POSTPONED and d.contact not in recorded
            ]
            if done or not (postponed or recorded):
                recorded.update(d.contact for d in done)
                summary = SendEmailResult(deliveries=done).summary
                deliveries = [d.model_dump(mode="json") for d in done]
                self._record(step.id, "email", summary, {"deliveries": deliveries})
            waits = [d.not_before for d in postponed if d.not_before is not None]
            if not waits:
                self.state.local_at = None
                return step.next
            until = min(waits)
            detail, what = _postponed(postponed)
            self._record(step.id, "wait", detail, {"until": until.isoformat()})
            if await self._wait(step.id, what, until, lambda: False) == "interrupted":
                return self._interrupted_next(step)

    async def _send_email(
        self, step: StepPlan, iteration: int, *, per_recipient: bool
    ) -> SendEmailResult | None:
        """The `send_email` activity for ``step``; None (recorded) when it failed for good."""
        email = step.email
        assert email is not None
        try:
            result: SendEmailResult = await workflow.execute_activity(
                ActivityName.SEND_EMAIL,
                SendEmailInput(
                    enrollment_id=self.input.enrollment_id,
                    enrollment_key=self.input.enrollment_key,
                    playbook=self.plan.playbook,
                    version=self.plan.version,
                    step_id=step.id,
                    iteration=iteration,
                    customer_id=self.input.customer_id,
                    email=email,
                    templates={name: self.plan.templates[name] for name in email.files},
                    sender=email.sender or self.plan.sender,
                    reply_to=email.reply_to or self.plan.reply_to,
                    event=self.input.trigger_event,
                    now=self._now(),
                    per_recipient=per_recipient,
                    delivery=self.plan.delivery,
                    local_at=self.state.local_at if per_recipient else None,
                ),
                result_type=SendEmailResult,
                start_to_close_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=EFFECT_RETRY,
                heartbeat_timeout=EFFECT_HEARTBEAT,
            )
        except ActivityError as err:
            self._record(step.id, "email_failed", f"email not sent: {_cause(err)}")
            return None
        return result

    async def _step_task(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        task = step.task
        assert task is not None
        ref: TaskRef = await workflow.execute_activity(
            ActivityName.CREATE_TASK,
            CreateTaskInput(
                enrollment_id=self.input.enrollment_id,
                enrollment_key=self.input.enrollment_key,
                playbook=self.plan.playbook,
                step_id=step.id,
                iteration=iteration,
                customer_id=self.input.customer_id,
                task=task,
                event=self.input.trigger_event,
                now=self._now(),
            ),
            result_type=TaskRef,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=EFFECT_RETRY,
            heartbeat_timeout=EFFECT_HEARTBEAT,
        )
        self._record(step.id, "task", ref.title, ref.model_dump(mode="json"))
        if not task.wait:
            return step.next
        done: Callable[[], bool] = lambda: ref.task_id in self.completions  # noqa: E731
        # Plans with a chain or a timeout were compiled by this code, so their commands
        # need no patch; older plans keep the single escalation below, command for command.
        lifecycle = bool(task.escalations) or task.timeout_seconds is not None
        timeout_at = (
            self._now() + timedelta(seconds=task.timeout_seconds)
            if task.timeout_seconds is not None
            else None
        )
        escalated = 0
        while True:
            if lifecycle:
                outcome, escalated = await self._await_task(step, ref, done, timeout_at, escalated)
            else:
                outcome, escalated = await self._await_task_single(step, ref, done, escalated)
            if outcome == "interrupted":
                return self._interrupted_next(step)
            if outcome == "timed_out":
                return await self._task_timed_out(step, ref)
            completion = self.completions[ref.task_id]
            if completion.undo_seconds and self._patched(PATCH_TASK_UNDO):
                held = await self._hold_for_undo(step.id, ref, completion.undo_seconds)
                if held == "reopened":
                    continue
                if held == "interrupted":
                    return self._interrupted_next(step)
            self.accepted_tasks.add(ref.task_id)
            self._record(
                step.id,
                "task_completed",
                completion.outcome,
                {
                    "task_id": ref.task_id,
                    "outcome": completion.outcome,
                    "by": completion.completed_by,
                },
            )
            return task.on_outcome.get(completion.outcome, step.next)

    async def _await_task_single(
        self, step: StepPlan, ref: TaskRef, done: Callable[[], bool], escalated: int
    ) -> tuple[str, int]:
        """A task of a plan without a chain: one escalation after `escalate_after`."""
        task = step.task
        assert task is not None
        deadline = None
        if task.escalate_after_seconds is not None and not escalated:
            deadline = self._now() + timedelta(seconds=task.escalate_after_seconds)
        label = f"task '{ref.title}'"
        outcome = await self._wait(step.id, label, deadline, done)
        if outcome == "timeout":
            await self._escalate(step, ref, task.escalate_to, 0)
            escalated = 1
            outcome = await self._wait(step.id, label, None, done)
        return outcome, escalated

    async def _await_task(
        self,
        step: StepPlan,
        ref: TaskRef,
        done: Callable[[], bool],
        timeout_at: datetime | None,
        escalated: int,
    ) -> tuple[str, int]:
        """Wait for the task through its escalation chain, until done or its timeout."""
        task = step.task
        assert task is not None
        label = f"task '{ref.title}'"
        while True:
            next_link: datetime | None = None
            if escalated < len(task.escalations):
                next_link = (
                    ref.escalate_at[escalated]
                    if escalated < len(ref.escalate_at)
                    else self._now() + timedelta(seconds=task.escalations[escalated].after_seconds)
                )
            deadlines = [d for d in (next_link, timeout_at) if d is not None]
            outcome = await self._wait(step.id, label, min(deadlines, default=None), done)
            if outcome != "timeout":
                return outcome, escalated
            if timeout_at is not None and self._now() >= timeout_at:
                return "timed_out", escalated
            await self._escalate(step, ref, task.escalations[escalated].to, escalated)
            escalated += 1

    async def _escalate(self, step: StepPlan, ref: TaskRef, to: str, level: int) -> None:
        await workflow.execute_activity(
            ActivityName.ESCALATE_TASK,
            EscalateTaskInput(
                task_id=ref.task_id,
                enrollment_id=self.input.enrollment_id,
                playbook=self.plan.playbook,
                step_id=step.id,
                customer_id=self.input.customer_id,
                escalate_to=to,
                now=self._now(),
                level=level,
            ),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=EFFECT_RETRY,
            heartbeat_timeout=EFFECT_HEARTBEAT,
        )
        self._record(step.id, "task_escalated", f"escalated to {to}", {"task_id": ref.task_id})

    async def _task_timed_out(self, step: StepPlan, ref: TaskRef) -> str:
        """The task's `timeout` passed: close it, then assume its outcome or go to a step."""
        task = step.task
        assert task is not None
        if task.timeout_outcome is not None:
            reason = f"timed out; outcome '{task.timeout_outcome}' assumed"
            target = task.on_outcome.get(task.timeout_outcome, step.next)
        else:
            target = task.on_timeout or step.next
            reason = f"timed out; the playbook went on to '{target}'"
        await workflow.execute_activity(
            ActivityName.CLOSE_TASK,
            CloseTaskInput(task_id=ref.task_id, reason=reason),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=EFFECT_RETRY,
            heartbeat_timeout=EFFECT_HEARTBEAT,
        )
        self.accepted_tasks.add(ref.task_id)
        self._record(
            step.id,
            "task_timed_out",
            reason,
            {"task_id": ref.task_id, "outcome": task.timeout_outcome, "next": target},
        )
        return target

    async def _hold_for_undo(self, step_id: str, ref: TaskRef, seconds: int) -> str:
        """Hold a completion for its undo window: 'accepted', 'reopened' or 'interrupted'."""
        self.waiting_for = f"the undo window of task '{ref.title}'"
        self.waiting_until = self._now() + timedelta(seconds=seconds)
        try:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: (
                        ref.task_id not in self.completions
                        or self.finish is not None
                        or self.skip_to is not None
                    ),
                    timeout=timedelta(seconds=seconds),
                )
        finally:
            self.waiting_for = self.waiting_until = None
        if ref.task_id not in self.completions:
            self._record(step_id, "task_reopened", "completion undone", {"task_id": ref.task_id})
            return "reopened"
        if self.finish is not None or self.skip_to is not None:
            return "interrupted"
        return "accepted"

    async def _step_wait(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        wait = step.wait
        assert wait is not None
        self._retimed_at = None
        carried, kept = self._carried(step.id)
        if carried and kept is not None:
            until = kept
        elif wait.seconds is not None:
            until = self._now() + timedelta(seconds=wait.seconds)
        else:
            value = values[0] if values else None
            if value is None:
                self._record(step.id, "skipped", f"until: {wait.until} has no value")
                return step.next
            until = local_datetime(str(value), wait.at_minute, self.state.timezone)
        # Per recipient: the first contact's local time; passed only once everyone's has.
        local_at = (
            None
            if carried and kept is not None
            else self._recipient_local_at(step, values[0] if values else None)
        )
        latest = until
        if local_at is not None:
            moments = self._local_moments(local_at)
            until, latest = min(moments), max(moments)
        passed_to = wait.on_passed or step.next
        if latest <= self._now():
            self._record(
                step.id,
                "skipped",
                f"{until.isoformat()} has already passed"
                + (f", going to {wait.on_passed}" if wait.on_passed else ""),
            )
            return passed_to
        self._record(step.id, "wait", f"until {until.isoformat()}", {"until": until.isoformat()})
        retime = self._retimer(wait.until, wait.at_minute, local_at is not None)
        result = await self._wait(step.id, "time", until, lambda: False, retime)
        if result == "interrupted":
            return self._interrupted_next(step)
        if result == "passed":
            return passed_to
        if local_at is not None:
            self.state.local_at = self._retimed_at or local_at
        return step.next

    def _before_contact_email(self, step: StepPlan) -> bool:
        """Whether ``step`` is a `wait: until ... at:` right before an email to contacts."""
        wait = step.wait
        if wait is None or wait.until is None or wait.at_minute is None or step.next == END:
            return False
        following = self.plan.step(step.next)
        return following.email is not None and following.email.recipient == "contacts"

    def _recipient_local_at(self, step: StepPlan, value: Any) -> LocalTime | None:
        """The wait's date and time to be read in each recipient's zone, for enrollments
        started since (None: the customer's zone, as before)."""
        if value is None or not self._before_contact_email(step) or not self.zones:
            return None
        if not self._patched(PATCH_RECIPIENT_LOCAL_AT):
            return None
        assert step.wait is not None and step.wait.at_minute is not None
        return LocalTime(day=str(value), minute=step.wait.at_minute)

    def _local_moments(self, local_at: LocalTime) -> list[datetime]:
        """``local_at`` in each zone the contacts live in."""
        zones = self.zones or [self.state.timezone]
        return [local_datetime(local_at.day, local_at.minute, zone) for zone in zones]

    def _retimer(
        self, until: str | None, at_minute: int | None, per_recipient: bool = False
    ) -> Callable[[], Awaitable[datetime | None]] | None:
        """The deadline of ``wait: until`` evaluated again (None when it has no value);
        per recipient, the first contact's local time."""
        if until is None:
            return None

        async def retime() -> datetime | None:
            decision = await self._decide(
                [until], self.input.trigger_event, contact_zones=per_recipient
            )
            value = decision.values[0] if decision.values else None
            if value is None:
                return None
            if per_recipient and at_minute is not None:
                self.zones = decision.zones
                self._retimed_at = LocalTime(day=str(value), minute=at_minute)
                return min(self._local_moments(self._retimed_at))
            return local_datetime(str(value), at_minute, self.state.timezone)

        return retime

    async def _step_wait_for(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        wf = step.wait_for
        assert wf is not None
        deadline = (
            self._now() + timedelta(seconds=wf.timeout_seconds)
            if wf.timeout_seconds is not None
            else None
        )
        carried, kept = self._carried(step.id)
        if carried:
            deadline = kept
        if wf.when:
            result = await self._wait_for_condition(step, wf.when, deadline)
            if result is None:
                return step.next
        elif wf.milestone:
            name = wf.milestone
            if self.state.tracker.is_reached(name) or await self._milestone_reached(name):
                self._record(step.id, "milestone", f"{name} already reached", {"name": name})
                return step.next
            self._record(
                step.id,
                "wait",
                f"waiting for milestone {name}",
                {"until": deadline.isoformat() if deadline else None, "for": name},
            )
            result = await self._wait(
                step.id, f"milestone {name}", deadline, lambda: self.state.tracker.is_reached(name)
            )
        else:
            assert wf.event is not None
            if self._patched(PATCH_EVENTS_BEFORE_WAIT):
                early = await self._claim_early_event(wf.event, wf.condition)
                if early is not None:
                    self._record(
                        step.id,
                        "event_matched",
                        f"{wf.event} was received before the wait",
                        {"id": early.id, "for": wf.event},
                    )
                    return step.next
            self.wait_event, self.wait_event_condition = wf.event, wf.condition
            self.wait_event_hit = None
            self._record(
                step.id,
                "wait",
                f"waiting for event {wf.event}",
                {"until": deadline.isoformat() if deadline else None, "for": wf.event},
            )
            result = await self._wait(
                step.id, f"event {wf.event}", deadline, lambda: self.wait_event_hit is not None
            )
            self.wait_event = self.wait_event_condition = None
        if result == "interrupted":
            return self._interrupted_next(step)
        if result == "timeout":
            self._record(step.id, "timeout", f"timed out, going to {wf.on_timeout}")
            return wf.on_timeout or step.next
        return step.next

    async def _step_branch(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        assert step.branch is not None
        for case, value in zip(step.branch.cases, values, strict=False):
            if value is True:
                self._record(
                    step.id,
                    "branch",
                    f"{case.condition} -> {case.goto}",
                    {"goto": case.goto, "because": case.condition},
                )
                return case.goto
        self._record(
            step.id,
            "branch",
            f"otherwise -> {step.branch.otherwise}",
            {"goto": step.branch.otherwise, "because": "otherwise"},
        )
        return step.branch.otherwise

    async def _step_update(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        assert step.update is not None
        await workflow.execute_activity(
            ActivityName.UPDATE_CUSTOMER,
            UpdateCustomerInput(
                enrollment_id=self.input.enrollment_id,
                step_id=step.id,
                customer_id=self.input.customer_id,
                playbook=self.plan.playbook,
                set=step.update.set,
                add_tags=step.update.add_tags,
                remove_tags=step.update.remove_tags,
                now=self._now(),
            ),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=EFFECT_RETRY,
            heartbeat_timeout=EFFECT_HEARTBEAT,
        )
        self._record(
            step.id, "update", ", ".join(step.update.set) or "tags", {"set": step.update.set}
        )
        return step.next

    async def _step_enroll(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        assert step.enroll is not None
        started: str = await workflow.execute_activity(
            ActivityName.ENROLL_CUSTOMER,
            EnrollCustomerInput(
                enrollment_id=self.input.enrollment_id,
                step_id=step.id,
                customer_id=self.input.customer_id,
                playbook=step.enroll.playbook,
            ),
            result_type=str,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=EFFECT_RETRY,
        )
        self._record(step.id, "enroll", started, {"playbook": step.enroll.playbook})
        return step.next

    async def _step_notify(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        """A `notify` or `webhook` step: delivered once (keyed like an email) and retried."""
        assert step.notify is not None
        try:
            result: NotifyResult = await workflow.execute_activity(
                ActivityName.NOTIFY,
                NotifyInput(
                    enrollment_id=self.input.enrollment_id,
                    enrollment_key=self.input.enrollment_key,
                    playbook=self.plan.playbook,
                    step_id=step.id,
                    iteration=iteration,
                    customer_id=self.input.customer_id,
                    channel=step.notify.channel,
                    endpoint=step.notify.endpoint,
                    body=step.notify.body,
                    event=self.input.trigger_event,
                    now=self._now(),
                ),
                result_type=NotifyResult,
                start_to_close_timeout=timedelta(minutes=1),
                schedule_to_close_timeout=timedelta(days=1),
                retry_policy=EFFECT_RETRY,
                heartbeat_timeout=EFFECT_HEARTBEAT,
            )
        except ActivityError as err:
            self._record(step.id, "notify_failed", f"not delivered: {_cause(err)}")
            return step.next
        self._record(
            step.id, "notify", f"{step.notify.endpoint}: {result.status}", result.model_dump()
        )
        return step.next

    _step_webhook = _step_notify

    async def _step_end(self, step: StepPlan, iteration: int, values: list[Any]) -> str:
        assert step.end is not None
        raise _Finish(step.end.outcome, EnrollmentStatus.COMPLETED, f"reached end step {step.id}")

    # -- waiting and events ------------------------------------------------------------
    async def _wait(
        self,
        step_id: str,
        what: str,
        deadline: datetime | None,
        satisfied: Callable[[], bool],
        retime: Callable[[], Awaitable[datetime | None]] | None = None,
    ) -> str:
        """Wait for ``satisfied``, the deadline, or an interrupt (exit, goal, skip, cancel).

        When the customer's data changes, the cycle is checked (`_check_cycle`) and, with
        ``retime``, the deadline is evaluated again and follows a moved date. Returns
        'satisfied', 'timeout', 'interrupted', or 'passed' (a moved deadline is already past).
        """
        self.waiting_for, self.waiting_until = what, deadline
        # Events from before this wait began are no longer "early" for a later wait_for.
        self.state.unclaimed_events.clear()
        await self._mark_step(step_id)
        try:
            while True:
                await self._drain()
                if self.customer_changed_pending and self.finish is None:
                    self.customer_changed_pending = False
                    await self._check_cycle()
                    moved = await retime() if retime and self.finish is None else None
                    if moved is not None and moved != deadline:
                        self._record(
                            step_id,
                            "wait_moved",
                            f"until {moved.isoformat()} (the date moved)",
                            {"until": moved.isoformat(), "was": _iso(deadline)},
                        )
                        deadline = self.waiting_until = moved
                        if moved <= self._now():
                            return "passed"
                if self.conditions_pending and self.finish is None:
                    self.conditions_pending = False
                    await self._judge_change_conditions()
                if self.finish is not None or self.skip_to is not None:
                    return "interrupted"
                if self._migrating(step_id):
                    self.carried_deadline = (step_id, deadline)
                    return "interrupted"
                if satisfied():
                    return "satisfied"
                timeout = None
                if deadline is not None:
                    timeout = deadline - self._now()
                    if timeout <= timedelta(0):
                        return "timeout"
                with contextlib.suppress(TimeoutError):
                    await workflow.wait_condition(
                        lambda: (
                            bool(self.inbox)
                            or self.customer_changed_pending
                            or self.conditions_pending
                            or self.finish is not None
                            or self.skip_to is not None
                            or self._migrating(step_id)
                            or satisfied()
                        ),
                        timeout=timeout,
                    )
        finally:
            self.waiting_for = self.waiting_until = None

    async def _drain(self) -> None:
        """Apply queued events: exit, milestones, goal, and the event a step waits for."""
        while self.inbox:
            event = self.inbox.pop(0)
            self._record(
                self.state.current,
                "event",
                event.name,
                {"name": event.name, "id": event.id, "properties": event.properties},
            )
            plan = self.plan
            if plan.exit and event.name in plan.exit.on_events:
                self.finish = self.finish or _Finish(
                    "exited", EnrollmentStatus.EXITED, f"event {event.name}"
                )
            for name in self.state.tracker.observe(plan.milestones, event.name, event.properties):
                self._record(self.state.current, "milestone", f"{name} reached", {"name": name})
                if plan.goal and plan.goal.milestone == name:
                    self.finish = self.finish or _Finish(
                        "goal_reached", EnrollmentStatus.GOAL_REACHED, f"milestone {name}"
                    )
            if (
                plan.goal
                and plan.goal.event == event.name
                and await self._holds(plan.goal.condition, event)
            ):
                self.finish = self.finish or _Finish(
                    "goal_reached", EnrollmentStatus.GOAL_REACHED, f"event {event.name}"
                )
            if (
                self.wait_event == event.name
                and self.wait_event_hit is None
                and await self._holds(self.wait_event_condition, event)
            ):
                self.wait_event_hit = event
            elif event.name in self._waited_event_names:
                self.state.unclaimed_events.append(event)
                del self.state.unclaimed_events[:-MAX_UNCLAIMED_EVENTS]

    async def _check_cycle(self) -> None:
        """End a date-triggered cycle whose trigger date moved past the cycle's anchor date.

        A renewal that happened moves the renewal date about a year ahead: the new trigger
        date (renewal date - 120 days) lies after this cycle's renewal date, so this cycle is
        over (outcome `ANCHOR_MOVED`) and the sweep enrolls the next when it is due. A smaller
        move keeps the cycle; its waits follow the new date.
        """
        dates, trigger = self.input.dates, self.plan.trigger
        if dates is None or dates.anchor_date is None or trigger is None or not trigger.date:
            return
        decision = await self._decide([trigger.date], None)
        value = decision.values[0] if decision.values else None
        if not isinstance(value, str):
            return
        moved_to = date.fromisoformat(value[:10])
        if moved_to > dates.anchor_date:
            self.finish = self.finish or _Finish(
                ANCHOR_MOVED,
                EnrollmentStatus.EXITED,
                f"{trigger.date} moved from {dates.trigger_date} to {moved_to}, after this "
                f"cycle's anchor date {dates.anchor_date}: the next cycle begins there",
            )

    def _change_conditions(self) -> list[str]:
        """The conditions a change of the customer's data is to be judged on now: the exit
        condition, the goal's `when` and the running `wait_for: when` (none: no decision)."""
        plan = self.plan
        conditions = [
            plan.exit.condition if plan.exit else None,
            plan.goal.when if plan.goal else None,
            self.wait_when,
        ]
        return [c for c in conditions if c]

    async def _judge_change_conditions(self) -> None:
        """After a `customer_changed` signal: end the enrollment when its exit condition or
        goal now holds, and mark the running `wait_for: when` held when its condition does."""
        conditions = self._change_conditions()
        if not conditions:
            return
        decision = await self._decide(conditions, None)
        held = dict(zip(conditions, decision.values, strict=False))
        plan = self.plan
        if plan.exit and plan.exit.condition and held.get(plan.exit.condition) is True:
            self.finish = self.finish or _Finish(
                "exited", EnrollmentStatus.EXITED, f"exit condition holds: {plan.exit.condition}"
            )
        if plan.goal and plan.goal.when and held.get(plan.goal.when) is True:
            self.finish = self.finish or _Finish(
                "goal_reached", EnrollmentStatus.GOAL_REACHED, f"goal holds: {plan.goal.when}"
            )
        if self.wait_when and held.get(self.wait_when) is True:
            self.wait_when_held = True

    async def _wait_for_condition(
        self, step: StepPlan, condition: str, deadline: datetime | None
    ) -> str | None:
        """A `wait_for: when` step: None when the condition holds already, else the outcome
        of waiting until a change makes it hold (or the deadline)."""
        decision = await self._decide([condition], None)
        if decision.values and decision.values[0] is True:
            self._record(step.id, "condition", f"{condition} holds", {"when": condition})
            return None
        self.wait_when, self.wait_when_held = condition, False
        self._record(
            step.id,
            "wait",
            f"waiting until {condition}",
            {"until": deadline.isoformat() if deadline else None, "when": condition},
        )
        try:
            result = await self._wait(
                step.id, f"until {condition}", deadline, lambda: self.wait_when_held
            )
        finally:
            self.wait_when = None
        if result == "satisfied":
            self._record(step.id, "condition", f"{condition} holds", {"when": condition})
        return result

    @property
    def _waited_event_names(self) -> set[str]:
        return {s.wait_for.event for s in self.plan.steps if s.wait_for and s.wait_for.event}

    async def _claim_early_event(self, name: str, condition: str | None) -> EventSignal | None:
        """The oldest unclaimed ``name`` event for which ``condition`` holds, taken out."""
        for event in list(self.state.unclaimed_events):
            if event.name == name and await self._holds(condition, event):
                self.state.unclaimed_events.remove(event)
                return event
        return None

    async def _holds(self, condition: str | None, event: EventSignal) -> bool:
        if condition is None:
            return True
        decision = await self._decide([condition], event)
        return bool(decision.values) and decision.values[0] is True

    def _interrupted_next(self, step: StepPlan) -> str:
        # A skip or finish is handled by the main loop; stay on this step meanwhile.
        return step.id if self.skip_to is None else self.skip_to

    # -- activities used by the interpreter itself ----------------------------------------
    async def _decide(
        self, expressions: list[str], event: EventSignal | None, *, contact_zones: bool = False
    ) -> DecideResult:
        decision: DecideResult = await workflow.execute_local_activity(
            ActivityName.DECIDE,
            DecideInput(
                customer_id=self.input.customer_id,
                playbook=self.plan.playbook,
                expressions=expressions,
                event=event,
                now=self._now(),
                enrollment=self.input.dates,
                contact_zones=contact_zones,
            ),
            result_type=DecideResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL_RETRY,
        )
        if not decision.found:
            raise _Finish(
                "exited", EnrollmentStatus.EXITED, f"customer {self.input.customer_id} not found"
            )
        self.state.timezone = decision.timezone
        for expr, error in zip(expressions, decision.errors, strict=False):
            if error:
                self._record(self.state.current, "expression_error", error, {"expression": expr})
        return decision

    async def _milestone_reached(self, name: str) -> bool:
        definition = self.plan.milestones.get(name)
        if definition is None:
            return False
        reached: bool = await workflow.execute_local_activity(
            ActivityName.CHECK_MILESTONE,
            CheckMilestoneInput(
                customer_id=self.input.customer_id,
                milestone=name,
                definition=definition.model_dump(mode="json"),
                since=self.input.started_at,
            ),
            result_type=bool,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL_RETRY,
        )
        if reached:
            self.state.tracker.mark(name)
        return reached

    async def _project(
        self,
        status: EnrollmentStatus,
        step: str | None,
        outcome: str | None = None,
        close_open_tasks: bool = False,
        started: bool = False,
    ) -> None:
        # The steps entered since the last record ride along: only the local activity's
        # input changes, so recorded histories still replay.
        visits = list(self.state.unreported_visits)
        await workflow.execute_local_activity(
            ActivityName.RECORD_ENROLLMENT,
            RecordEnrollmentInput(
                enrollment_id=self.input.enrollment_id,
                enrollment_key=self.input.enrollment_key,
                playbook=self.plan.playbook,
                version=self.plan.version,
                customer_id=self.input.customer_id,
                cycle_key=self.input.cycle_key,
                status=status,
                current_step=step,
                outcome=outcome,
                at=self._now(),
                close_open_tasks=close_open_tasks,
                started=started,
                visits=visits,
            ),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=LOCAL_RETRY,
        )
        del self.state.unreported_visits[: len(visits)]

    async def _mark_step(self, step_id: str) -> None:
        """Where the enrollment waits: a search attribute and the store's projection."""
        if self.input.use_search_attributes:
            workflow.upsert_search_attributes([STEP_KEY.value_set(step_id)])
        await self._project(EnrollmentStatus.RUNNING, step_id)

    # -- bookkeeping ---------------------------------------------------------------------
    def _patched(self, patch_id: str) -> bool:
        """Whether this enrollment has the change ``patch_id``: always, when it started at
        the change's generation or later (`PATCH_GENERATIONS`), else as its history says."""
        since = PATCH_GENERATIONS.get(patch_id)
        if since is not None and self.input.generation >= since:
            return True
        return workflow.patched(patch_id)

    def _now(self) -> datetime:
        """Workflow time, shifted by the simulation clock offset (zero in production)."""
        offset = self.input.clock_offset_seconds
        return workflow.now() + timedelta(seconds=offset) if offset else workflow.now()

    def _record(
        self, step: str, kind: str, detail: str = "", data: dict[str, Any] | None = None
    ) -> None:
        self.state.records.append(
            StepRecord(at=self._now(), step=step, kind=kind, detail=detail, data=data or {})
        )
        del self.state.records[:-MAX_RECORDS]

    def _raise_if_finished(self) -> None:
        if self.finish is not None:
            raise self.finish

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.input.continue_as_new_after_events
        )

    def _continue_as_new(self) -> None:
        self.state.runs += 1
        self._record(self.state.current, "continue_as_new", f"run {self.state.runs}")
        workflow.continue_as_new(self.input.model_copy(update={"state": self.state}))

    async def _end(self, done: _Finish) -> EnrollmentResult:
        self.outcome = done.outcome
        self._record(
            self.state.current, done.status, done.reason or done.outcome, {"outcome": done.outcome}
        )
        if self.input.use_search_attributes:
            workflow.upsert_search_attributes([STEP_KEY.value_set(END)])
        # Open tasks are moot when the enrollment is cut short (exit, goal, cancel). When it
        # runs to an end step they are work handed to people (the QBR follow-up, the
        # manager's review of a declined QBR, the renewal escalation, created just before
        # the end): cancelling them too, as before, withdrew them the moment they appeared.
        # Only a local activity's input changes, so recorded histories still replay.
        cut_short = done.status != EnrollmentStatus.COMPLETED
        await self._project(done.status, None, done.outcome, close_open_tasks=cut_short)
        return EnrollmentResult(
            outcome=done.outcome,
            reason=done.reason,
            ended_at_step=self.state.current,
            status=done.status,
            records=list(self.state.records),
        )


def _postponed(deliveries: list[EmailDelivery]) -> tuple[str, str]:
    """Why recipients wait, and what for: the send window alone reads as before."""
    if all((d.reason or "").startswith(WINDOW_REASON) for d in deliveries):
        return "waiting for the send window", "send window"
    if all((d.reason or "").startswith(LOCAL_TIME_REASON) for d in deliveries):
        reasons = "; ".join(f"{d.contact}: {d.reason}" for d in deliveries)
        return f"postponed: {reasons}", "the recipients' local time"
    reasons = "; ".join(f"{d.contact}: {d.reason}" for d in deliveries)
    return f"postponed: {reasons}", "delivery policy"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _cause(err: BaseException) -> str:
    cause = err.__cause__
    while cause is not None and cause.__cause__ is not None:
        cause = cause.__cause__
    return str(cause or err)
