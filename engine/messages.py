"""Every message that crosses the workflow, activity and client boundary, and their names.

The input, signals, updates, query answer and result of `PlaybookWorkflow`; the input and
result of every activity; the task queue, workflow, signal, query, update and activity
names; the search attributes the engine sets. Workflow code (`workflows/`), the activity
implementations (`activities/`), the clients (API, CLI, triggers, simulation) and the
benchmark all import them from here, so each name and shape is defined once.

Pure pydantic models and string constants (no I/O, no jinja2/yaml), safe to import from
workflow code. The names are part of recorded histories: never change a value.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field

from engine.language.milestones import MilestoneTracker
from engine.language.plan import CompiledPlan, DeliveryPlan, EmailPlan, SenderPlan, TaskPlan
from engine.statuses import EnrollmentStatus, OutboxStatus

TASK_QUEUE = "playbooks"
WORKFLOW_NAME = "PlaybookWorkflow"
SWEEP_WORKFLOW_NAME = "TriggerSweepWorkflow"
# Run by the `team-notify` Schedule: task notifications and the daily digests.
TEAM_NOTIFY_WORKFLOW_NAME = "TeamNotifyWorkflow"
HEALTH_WORKFLOW_NAME = "HealthRecomputeWorkflow"
# Custom search attributes the engine sets (registered by `playbook up` / the test setup).
SA_PLAYBOOK = "PlaybookId"
SA_VERSION = "PlaybookVersion"
SA_CUSTOMER = "CustomerId"
SA_STEP = "PlaybookStep"
SEARCH_ATTRIBUTES = (SA_PLAYBOOK, SA_VERSION, SA_CUSTOMER, SA_STEP)
# What new enrollments are started with (`EnrollmentInput.generation`). Raise it, and list the
# patches it makes unconditional in `workflows/interpreter.py` (`PATCH_GENERATIONS`), to spare
# new histories the marker and search-attribute upsert each `workflow.patched` records.
INTERPRETER_GENERATION: Final = 1


class SignalName:
    """Signals `PlaybookWorkflow` accepts."""

    EVENT: Final = "event"
    TASK_COMPLETED: Final = "task_completed"
    CUSTOMER_CHANGED: Final = "customer_changed"


class QueryName:
    """Queries `PlaybookWorkflow` answers."""

    STATUS: Final = "status"


class UpdateName:
    """Updates `PlaybookWorkflow` accepts (each with a validator)."""

    PAUSE: Final = "pause"
    RESUME: Final = "resume"
    SKIP_TO_STEP: Final = "skip_to_step"
    CANCEL: Final = "cancel"
    REOPEN_TASK: Final = "reopen_task"
    MIGRATE: Final = "migrate"


class ActivityName:
    """Activity types, as registered by `activities/` and called by name from workflows."""

    DECIDE: Final = "decide"
    CHECK_MILESTONE: Final = "check_milestone"
    RECORD_ENROLLMENT: Final = "record_enrollment"
    SEND_EMAIL: Final = "send_email"
    CREATE_TASK: Final = "create_task"
    ESCALATE_TASK: Final = "escalate_task"
    CLOSE_TASK: Final = "close_task"
    NOTIFY: Final = "notify"
    UPDATE_CUSTOMER: Final = "update_customer"
    ENROLL_CUSTOMER: Final = "enroll_customer"
    SWEEP_TRIGGERS: Final = "sweep_triggers"
    NOTIFY_TEAM: Final = "notify_team"
    RECOMPUTE_HEALTH: Final = "recompute_health"


# -- the workflow's input, signals, updates, query answer and result -----------------------


class EventSignal(BaseModel):
    """A lifecycle or usage event delivered to an enrollment (``event`` signal)."""

    id: str
    name: str
    at: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class TaskCompletion(BaseModel):
    """A CSM completed a task (``task_completed`` signal)."""

    task_id: str
    outcome: str
    note: str | None = None
    completed_by: str | None = None
    # The workflow holds the completion this long before acting on it, so that it can be
    # undone (`reopen_task`); 0 (completions sent before undo existed) acts at once.
    undo_seconds: int = 0


class TaskReopen(BaseModel):
    """Undo a task's completion within its undo window (``reopen_task`` update)."""

    task_id: str
    by: str | None = None


# The customer fields a date in an expression can come from: the renewal date, custom
# attributes (a contract end, a go-live date) and the time zone a `wait: at` is read in.
DATE_FIELDS: Final = ("renewal_date", "attributes", "timezone")


class CustomerChanged(BaseModel):
    """The customer's stored data changed (``customer_changed`` signal, from a CRM update, an
    import, an `update` step or a new health score): dates a running wait or the enrollment's
    cycle depend on may have moved, and conditions over the data (`exit: if`, `goal: when`,
    `wait_for: when`) may have come true."""

    customer_id: str
    fields: list[str] = Field(default_factory=list, description="The fields that changed.")

    @property
    def dates_may_have_moved(self) -> bool:
        """Whether a date field changed (no list: assume so, as before lists were sent)."""
        return not self.fields or any(name in DATE_FIELDS for name in self.fields)


class SkipRequest(BaseModel):
    """Operator update: jump to a step (or 'end')."""

    step: str
    reason: str | None = None


class MigrateRequest(BaseModel):
    """Operator update (`playbook deploy --migrate`): continue in another version of the
    playbook, at the step ``mapping`` names for the current one (default: the same id)."""

    plan: CompiledPlan
    mapping: dict[str, str] = Field(default_factory=dict)
    reason: str | None = None


class CancelRequest(BaseModel):
    """Operator update: stop the enrollment now, outcome 'cancelled'."""

    reason: str = "cancelled by an operator"
    by: str | None = None


class StepRecord(BaseModel):
    """One thing that happened in an enrollment, for status and timelines."""

    at: datetime
    step: str
    kind: str
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class StepEntry(BaseModel):
    """The enrollment entered a step (its `visit`-th time there) at `at`: for the funnel."""

    step: str
    visit: int
    at: datetime


class LocalTime(BaseModel):
    """A date at a time of day, to be read in each recipient's own zone (`wait: ... at:`)."""

    day: str
    minute: int


class InterpreterState(BaseModel):
    """Everything the interpreter needs to resume, carried across continue-as-new."""

    current: str
    visits: dict[str, int] = Field(default_factory=dict)
    tracker: MilestoneTracker = Field(default_factory=MilestoneTracker)
    seen_event_ids: list[str] = Field(default_factory=list)
    records: list[StepRecord] = Field(default_factory=list)
    steps_done: int = 0
    timezone: str = "UTC"
    paused: bool = False
    runs: int = 1
    # Events a `wait_for: event` step may still claim: received since the enrollment's
    # previous wait began, not yet matched by a wait (see `Interpreter._claim_early_event`).
    unclaimed_events: list[EventSignal] = Field(default_factory=list)
    # Steps entered since the store last heard from this enrollment; reported with the next
    # `record_enrollment` (no activity of their own, so histories keep their commands).
    unreported_visits: list[StepEntry] = Field(default_factory=list)
    # The local time a `wait: until ... at:` ended on, for the email step right after it.
    local_at: LocalTime | None = None


class EnrollmentDates(BaseModel):
    """The dates of a date-triggered enrollment's cycle, set by the sweep that started it."""

    trigger_date: date
    anchor_date: date | None = Field(
        default=None, description="The date the cycle is counted from, e.g. the renewal date."
    )
    late_days: int = Field(default=0, description="Days after the trigger date it enrolled.")

    def expression_view(self) -> dict[str, Any]:
        """What expressions see as ``enrollment``."""
        return {
            "late_days": self.late_days,
            "trigger_date": self.trigger_date,
            "anchor_date": self.anchor_date,
        }


class EnrollmentInput(BaseModel):
    """The single input of `PlaybookWorkflow`: the plan itself, so edits never touch history."""

    plan: CompiledPlan
    customer_id: str
    enrollment_id: str
    # Unique to this enrollment (the workflow ID repeats when a customer is enrolled again):
    # the prefix of its email and task idempotency keys. None in enrollments started before
    # it existed, which keep their workflow ID as the prefix, so none of their effects repeats.
    enrollment_key: str | None = None
    cycle_key: str | None = None
    trigger_event: EventSignal | None = None
    started_at: datetime | None = None
    use_search_attributes: bool = True
    continue_as_new_after_events: int = 8_000
    clock_offset_seconds: float = Field(
        default=0.0,
        description="Simulation only: shift the interpreter's clock, so a simulation can "
        "start at any date on the time-skipping server. Zero in production.",
    )
    state: InterpreterState | None = None
    dates: EnrollmentDates | None = None
    generation: int = Field(
        default=0,
        description="The interpreter behaviour the enrollment started with "
        "(`INTERPRETER_GENERATION`): the changes `workflow.patched` guards up to this "
        "generation apply without a patch marker in its history. 0 in payloads from before "
        "generations, which keep asking `workflow.patched`.",
    )


class EnrollmentSnapshot(BaseModel):
    """Answer of the ``status`` query: where the enrollment stands."""

    enrollment_id: str
    playbook: str
    version: str
    customer_id: str
    current_step: str | None
    waiting_for: str | None = None
    waiting_until: datetime | None = None
    paused: bool = False
    steps_done: int = 0
    milestones: list[str] = Field(default_factory=list)
    outcome: str | None = None
    records: list[StepRecord] = Field(default_factory=list)


class EnrollmentResult(BaseModel):
    """What the workflow returns when the enrollment ends."""

    outcome: str
    reason: str | None = None
    ended_at_step: str | None = None
    status: EnrollmentStatus = EnrollmentStatus.COMPLETED
    records: list[StepRecord] = Field(default_factory=list)


# -- activity inputs and results ----------------------------------------------------------
class DecideInput(BaseModel):
    """Evaluate expressions over the customer's current data (``decide`` local activity)."""

    customer_id: str
    playbook: str
    expressions: list[str] = Field(default_factory=list)
    event: EventSignal | None = None
    now: datetime
    enrollment: EnrollmentDates | None = None
    # Also list the time zones of the customer's contacts (`DecideResult.zones`): a
    # `wait: until ... at:` before an email waits for the first recipient's local time.
    contact_zones: bool = False


class DecideResult(BaseModel):
    found: bool
    timezone: str = "UTC"
    values: list[Any] = Field(default_factory=list)
    errors: list[str | None] = Field(default_factory=list)
    # The contacts' zones (their own, else the customer's), sorted; when asked for.
    zones: list[str] = Field(default_factory=list)


class SendEmailInput(BaseModel):
    enrollment_id: str
    enrollment_key: str | None = None
    playbook: str
    version: str
    step_id: str
    iteration: int
    customer_id: str
    email: EmailPlan
    templates: dict[str, str]
    sender: SenderPlan | None = None
    reply_to: str | None = None
    event: EventSignal | None = None
    now: datetime
    # Set by enrollments started since respectful delivery: the activity applies the send
    # window in each recipient's zone and calendar, and the delivery policy's caps.
    per_recipient: bool = False
    delivery: DeliveryPlan | None = None
    # Set after a `wait: until ... at:`: each recipient's email waits for that time in their
    # own zone (docs/delivery.md).
    local_at: LocalTime | None = None


class EmailDelivery(BaseModel):
    contact: str
    status: OutboxStatus
    subject: str | None = None
    reason: str | None = None
    message_id: str | None = None
    # A `postponed` email is tried again from this moment.
    not_before: datetime | None = None


class SendEmailResult(BaseModel):
    deliveries: list[EmailDelivery] = Field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.deliveries:
            return "no recipients"
        return ", ".join(f"{d.contact} ({d.status})" for d in self.deliveries)


class CreateTaskInput(BaseModel):
    enrollment_id: str
    enrollment_key: str | None = None
    playbook: str
    step_id: str
    iteration: int
    customer_id: str
    task: TaskPlan
    event: EventSignal | None = None
    now: datetime


class TaskRef(BaseModel):
    """A task as the workflow knows it; read from the store row with `model_validate`.

    A renamed field's validation alias is the row's column; the payload keeps the field
    names (validation aliases do not apply to serialization, and names still validate).
    """

    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    task_id: str = Field(validation_alias="id")
    assignee: str | None = Field(validation_alias="assignee_email")
    title: str
    due_at: datetime | None = None
    priority: str = "normal"
    # When each link of the plan's escalation chain fires, on the assignee's working days;
    # decided by `create_task` and so recorded in history (empty for older tasks).
    escalate_at: list[datetime] = Field(default_factory=list)
    # How the assignee was chosen (owner, manager, round_robin, least_open, address).
    assigned_by: str | None = None


class EscalateTaskInput(BaseModel):
    task_id: str
    enrollment_id: str
    playbook: str
    step_id: str
    customer_id: str
    escalate_to: str
    now: datetime
    # Link of the escalation chain (0: the first, keyed as before chains existed).
    level: int = 0


class NotifyInput(BaseModel):
    """A `notify` or `webhook` step: a JSON body of templates, for a configured endpoint."""

    enrollment_id: str
    enrollment_key: str | None = None
    playbook: str
    step_id: str
    iteration: int
    customer_id: str
    channel: str
    endpoint: str
    body: dict[str, Any]
    event: EventSignal | None = None
    now: datetime


class NotifyResult(BaseModel):
    status: str
    endpoint: str
    configured: bool


class CloseTaskInput(BaseModel):
    """Cancel an open task and say why (it timed out, its enrollment moved on)."""

    task_id: str
    reason: str


class CheckMilestoneInput(BaseModel):
    customer_id: str
    milestone: str
    definition: dict[str, Any]
    since: datetime | None = None


class UpdateCustomerInput(BaseModel):
    enrollment_id: str
    step_id: str
    customer_id: str
    playbook: str
    set: dict[str, Any] = Field(default_factory=dict)
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)
    now: datetime


class EnrollCustomerInput(BaseModel):
    enrollment_id: str
    step_id: str
    customer_id: str
    playbook: str


class RecordEnrollmentInput(BaseModel):
    """Update the enrollments projection in the store (local activity)."""

    enrollment_id: str
    # The run's own key (its row in the store); None for runs started before keys existed.
    enrollment_key: str | None = None
    playbook: str
    version: str
    customer_id: str
    cycle_key: str | None = None
    status: EnrollmentStatus
    current_step: str | None = None
    outcome: str | None = None
    at: datetime
    close_open_tasks: bool = False
    # The enrollment's first record: a new enrollment under a reused workflow ID replaces
    # the ended one's start, end and outcome.
    started: bool = False
    # The steps the run entered since its previous record, kept as `step_visits` for the
    # funnel report.
    visits: list[StepEntry] = Field(default_factory=list)


class SweepInput(BaseModel):
    """Sweep one date- or schedule-triggered playbook (its latest registered version)."""

    playbook: str


class SweepResult(BaseModel):
    enrolled: list[str] = Field(default_factory=list)


class TeamNotifyInput(BaseModel):
    """One run of the team's task notifications (`TeamNotifyWorkflow`); nothing to choose:
    the activity reads the open tasks and the time when it runs."""


class TeamNotifyResult(BaseModel):
    """What a run delivered: notifications by status, digests emailed, keys still failing
    (the next run retries them)."""

    deliveries: dict[str, int] = Field(default_factory=dict)
    digests: int = 0
    failed: list[str] = Field(default_factory=list)


class HealthRecomputeInput(BaseModel):
    """Recompute every customer's health with this scorecard (``health.yaml`` as validated
    JSON, carried by the daily Schedule so the worker needs no project folder)."""

    scorecard: dict[str, Any]


class HealthRecomputeResult(BaseModel):
    customers: int = 0
    changed: int = 0
    enrolled: list[str] = Field(default_factory=list)
