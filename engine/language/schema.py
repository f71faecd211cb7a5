"""The playbook language as pydantic models: the schema is the documentation.

These models describe what CS ops write in YAML. They check shape and simple values
(ids, durations, times of day); the compiler checks everything that needs the whole
playbook (step references, loops, expressions, templates, milestones).
`playbook schema` exports them as JSON Schema for editors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from engine.language.durations import DURATION_HELP, parse_duration

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
STEP_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]*$"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ACTIONS = (
    "email", "task", "wait", "wait_for", "branch", "update", "enroll", "notify", "webhook", "end",
)  # fmt: skip
END = "end"
TIME_OF_DAY = r"([01]\d|2[0-3]):[0-5]\d"


def _duration(value: str) -> str:
    parse_duration(value)
    return value


def _time_of_day(value: str) -> str:
    if not re.fullmatch(TIME_OF_DAY, value):
        raise ValueError(f"'{value}' is not a time of day; write 'HH:MM' (24-hour), e.g. '09:00'")
    return value


Duration = Annotated[
    str,
    AfterValidator(_duration),
    Field(description=f"How long: {DURATION_HELP}.", examples=["3d", "12h", "P14D"]),
]
TimeOfDay = Annotated[
    str,
    AfterValidator(_time_of_day),
    # The pattern is for editors only (json_schema_extra): the validator gives the message.
    Field(
        description="24-hour local time 'HH:MM'.",
        json_schema_extra={"pattern": f"^{TIME_OF_DAY}$"},
    ),
]
Expression = Annotated[
    str,
    Field(
        description="A Jinja2 expression, evaluated in a sandbox, e.g. "
        "'customer.segment == \"enterprise\"'.",
        min_length=1,
    ),
]
TextTemplate = Annotated[str, Field(description="Text with Jinja2 '{{ ... }}' placeholders.")]
StepRef = Annotated[
    str,
    Field(description="The id of a step in this playbook, or 'end'.", pattern=STEP_ID_PATTERN),
]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WORKING_DAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri")


class Model(BaseModel):
    """Base for every language model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class SendWindow(Model):
    """When emails may go out, in the customer's own time zone."""

    days: list[Weekday] = Field(default_factory=lambda: list(WORKING_DAYS), min_length=1)
    between: tuple[TimeOfDay, TimeOfDay] = ("09:00", "17:00")

    @model_validator(mode="after")
    def _ordered(self) -> SendWindow:
        if self.between[0] >= self.between[1]:
            raise ValueError(
                f"send window must open before it closes, got {self.between[0]}-{self.between[1]}"
            )
        return self


class Sender(Model):
    """An email sender identity."""

    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
    name: str | None = None


class Defaults(Model):
    """Settings every step inherits unless it overrides them."""

    send_window: SendWindow | None = None
    from_: Sender | None = Field(default=None, alias="from")
    reply_to: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None


class Schedule(Model):
    """A recurring trigger: every period, optionally a fixed time before its end."""

    every: Literal["day", "week", "month", "quarter", "year"]
    before_end: Duration | None = Field(
        default=None, description="Start this long before the period ends (e.g. 3w)."
    )
    after_start: Duration | None = Field(
        default=None, description="Start this long after the period starts."
    )


class Late(Model):
    """Who a date trigger enrolls when their trigger date has already passed: a customer
    imported mid-cycle, or every customer when the playbook is first deployed."""

    enroll_until: Expression | None = Field(
        default=None,
        description="Enroll late while this date (the anchor, e.g. 'customer.renewal_date') "
        "is still ahead.",
    )
    catch_up: Duration | None = Field(
        default=None, description="Enroll late for this long after the trigger date."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Late:
        if (self.enroll_until is None) == (self.catch_up is None):
            raise ValueError(
                "'late' needs exactly one of 'enroll_until' (a date) or 'catch_up' (a "
                "duration), or write 'late: skip'"
            )
        return self


def _late_kind(value: Any) -> str:
    return "skip" if isinstance(value, str) else "policy"


LatePolicy = Annotated[
    Annotated[Late, Tag("policy")] | Annotated[Literal["skip"], Tag("skip")],
    Discriminator(_late_kind),
    Field(
        description="Who enrolls when the trigger date has already passed: "
        "{enroll_until: <date expression>}, {catch_up: <duration>} or 'skip' (only on the "
        "date itself). Default for 'on_date: <anchor> - <duration>': enroll until <anchor>; "
        "otherwise catch up for 7d."
    ),
]


class Trigger(Model):
    """What enrolls a customer: an event, a date, a schedule, or an operator."""

    on_event: str | None = Field(default=None, description="Event name, e.g. customer.created.")
    on_date: Expression | None = Field(
        default=None,
        description="Date expression; the customer is enrolled on that date, once per date. "
        "E.g. 'customer.renewal_date - days(120)'.",
    )
    schedule: Schedule | None = None
    manual: bool | None = None
    on_change: Expression | None = Field(
        default=None,
        description="A condition over customer data, health included; enrolls when it becomes "
        "true (not while it stays true), e.g. 'health.score < 40' or "
        "'customer.segment == \"enterprise\"'.",
    )
    cooldown: Duration | None = Field(
        default=None,
        description="With on_change: no new enrollment this long after the last one started.",
    )
    if_: Expression | None = Field(default=None, alias="if")
    late: LatePolicy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        kinds = [
            k
            for k in ("on_event", "on_date", "schedule", "manual", "on_change")
            if getattr(self, k) not in (None, False)
        ]
        if len(kinds) != 1:
            raise ValueError(
                "a trigger needs exactly one of 'on_event', 'on_date', 'schedule', "
                f"'on_change' or 'manual: true' (got {', '.join(kinds) or 'none'})"
            )
        if self.cooldown is not None and self.on_change is None:
            raise ValueError("'cooldown' applies only to an 'on_change' trigger")
        if self.late is not None and self.on_date is None:
            raise ValueError("'late' applies only to an 'on_date' trigger")
        return self


class Exit(Model):
    """When an enrollment stops early with outcome 'exited'."""

    on_events: list[str] = Field(default_factory=list)
    if_: Expression | None = Field(
        default=None,
        alias="if",
        description="A condition over customer data, health included, judged before each step "
        "and whenever the customer's data changes during a wait.",
    )


class Goal(Model):
    """What success looks like; reaching it ends the enrollment as 'goal_reached'."""

    milestone: str | None = None
    event: str | None = None
    when: Expression | None = Field(
        default=None,
        description="A condition over customer data, health included, judged before each step "
        "and whenever the customer's data changes, e.g. 'health.band == \"green\"'.",
    )
    if_: Expression | None = Field(default=None, alias="if")

    @model_validator(mode="after")
    def _exactly_one(self) -> Goal:
        if [self.milestone, self.event, self.when].count(None) != 2:
            raise ValueError("a goal needs exactly one of 'milestone', 'event' or 'when'")
        if self.when is not None and self.if_ is not None:
            raise ValueError("'if' filters a goal event; with 'when', write one condition")
        return self


class EmailVariant(Model):
    """A variant of an email step: its own template or inline subject and body, or none to
    send the step's own content, picked by weight and always the same for a contact."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    weight: Annotated[int, Field(ge=1, le=1000)] = 1
    template: str | None = None
    subject: TextTemplate | None = None
    body: TextTemplate | None = Field(default=None, description="Inline HTML body.")
    text: TextTemplate | None = Field(default=None, description="Inline plain-text body.")

    @model_validator(mode="after")
    def _content(self) -> EmailVariant:
        if self.template and (self.subject or self.body or self.text):
            raise ValueError("use either 'template' or inline 'subject' and 'body', not both")
        if not self.template and bool(self.subject) != bool(self.body):
            raise ValueError("an inline variant needs both 'subject' and 'body'")
        return self


class EmailAction(Model):
    """Send a tech-touch email, from a template file or written inline."""

    template: str | None = Field(
        default=None,
        description="Template name under playbooks/templates/, e.g. onboarding/welcome.",
    )
    subject: TextTemplate | None = None
    body: TextTemplate | None = Field(default=None, description="Inline HTML body.")
    text: TextTemplate | None = Field(default=None, description="Inline plain-text body.")
    to: str | None = Field(
        default=None,
        description="Who receives it: an expression over 'contact' (default: every subscribed "
        "contact), or 'owner' (the CSM), 'manager', 'role:<name>' or an email address.",
    )
    send_window: SendWindow | Literal["anytime"] | None = None
    from_: Sender | None = Field(default=None, alias="from")
    reply_to: str | None = None
    variants: list[EmailVariant] = Field(
        default_factory=list,
        max_length=20,
        description="Variants by weight; a contact always gets the same one (docs/delivery.md).",
    )

    @model_validator(mode="after")
    def _content(self) -> EmailAction:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError("every variant needs its own name")
        if self.template and (self.subject or self.body or self.text):
            raise ValueError("use either 'template' or inline 'subject' and 'body', not both")
        if not self.template and not (self.subject and self.body):
            raise ValueError("an email needs a 'template', or both 'subject' and 'body'")
        return self


class EscalationLink(Model):
    """One link of an escalation chain: whom to tell, and how long after the previous link."""

    to: str = Field(description="owner | manager | role:<name> | an email address.")
    after: Duration = Field(description="Working days (or hours) after the previous link.")


class TaskAction(Model):
    """Create a task (a CTA) for a person on the customer's team."""

    title: TextTemplate
    description: TextTemplate | None = None
    assignee: str = Field(
        default="owner", description="owner | manager | role:<name> | an email address."
    )
    due: Duration | None = None
    priority: Literal["low", "normal", "high", "urgent"] = "normal"
    outcomes: list[Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]] = Field(
        default_factory=lambda: ["done"]
    )
    wait: bool = Field(default=False, description="Hold the playbook until the task is done.")
    escalate_after: Duration | None = None
    escalate_to: str = Field(default="manager", description="manager | owner | an email.")
    escalate: list[EscalationLink] | None = Field(
        default=None,
        description="An escalation chain (e.g. owner, then manager, then a role), each link "
        "after its delay on the assignee's working days; replaces escalate_after/escalate_to.",
    )
    on_outcome: dict[str, StepRef] = Field(default_factory=dict)
    timeout: Duration | None = Field(
        default=None, description="How long a waiting task may stay open before on_timeout."
    )
    on_timeout: str | None = Field(
        default=None,
        description="When the timeout passes: one of the task's outcomes (assumed) or a step "
        "id (or 'end') to go to; the next step when left out.",
    )
    assign: Literal["round_robin", "least_open"] = Field(
        default="round_robin",
        description="How a role:<name> assignee picks among the role's members.",
    )

    @model_validator(mode="after")
    def _one_escalation_style(self) -> TaskAction:
        if self.escalate is not None and self.escalate_after is not None:
            raise ValueError("use either 'escalate' (a chain) or 'escalate_after', not both")
        if self.on_timeout and not self.timeout:
            raise ValueError("'on_timeout' needs a 'timeout'")
        return self


class NotifyAction(Model):
    """Tell the team: a message to Slack (incoming webhook) or the outbound webhook."""

    channel: Literal["slack", "webhook"] = "slack"
    text: TextTemplate


class WebhookAction(Model):
    """POST a JSON body (string values are templates) to a configured endpoint (a CRM, a
    ticketing tool), once, signed and retried like the engine's other webhooks."""

    endpoint: str = Field(
        pattern=r"^[a-z][a-z0-9_]*$",
        description="A name in WEBHOOK_ENDPOINTS (settings), e.g. 'crm'.",
    )
    body: dict[str, Any] = Field(description="The JSON body; strings may use '{{ ... }}'.")


class WaitAction(Model):
    """Pause for a duration, or until a date (optionally at a local time)."""

    for_: Duration | None = Field(default=None, alias="for")
    until: Expression | None = None
    at: TimeOfDay | None = None
    on_passed: StepRef | None = Field(
        default=None,
        description="Go here when the 'until' date has already passed (a late enrollment, or "
        "a date moved into the past) instead of to the next step, so a touch meant for that "
        "date is not sent late.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitAction:
        if (self.for_ is None) == (self.until is None):
            raise ValueError("a wait needs exactly one of 'for' (a duration) or 'until' (a date)")
        if self.on_passed is not None and self.until is None:
            raise ValueError("'on_passed' needs 'until' (a date)")
        return self


class WaitForAction(Model):
    """Wait for a milestone or an event, with an optional timeout."""

    milestone: str | None = None
    event: str | None = None
    when: Expression | None = Field(
        default=None,
        description="A condition over customer data, health included: the wait ends once it "
        "holds (judged when the wait starts and whenever the customer's data changes).",
    )
    if_: Expression | None = Field(default=None, alias="if")
    timeout: Duration | None = None
    on_timeout: StepRef | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> WaitForAction:
        if [self.milestone, self.event, self.when].count(None) != 2:
            raise ValueError("wait_for needs exactly one of 'milestone', 'event' or 'when'")
        if self.when is not None and self.if_ is not None:
            raise ValueError("'if' filters a waited-for event; with 'when', write one condition")
        if self.on_timeout and not self.timeout:
            raise ValueError("'on_timeout' needs a 'timeout'")
        return self


class BranchCase(Model):
    if_: Expression = Field(alias="if")
    goto: StepRef


class BranchAction(Model):
    """Go to the first case whose condition holds, else to 'otherwise'."""

    cases: list[BranchCase] = Field(min_length=1)
    otherwise: StepRef | None = None


class UpdateAction(Model):
    """Set customer attributes or tags."""

    set: dict[str, Any] = Field(
        default_factory=dict, description="Attributes to set; strings may use '{{ }}'."
    )
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)


class EnrollAction(Model):
    """Enroll this customer in another playbook."""

    playbook: Annotated[str, Field(pattern=ID_PATTERN)]


class EndAction(Model):
    """End the enrollment here with an outcome label."""

    outcome: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")] = "completed"


class StepBase(Model):
    id: Annotated[str, Field(pattern=STEP_ID_PATTERN, description="Unique step id.")]
    if_: Expression | None = Field(
        default=None, alias="if", description="Skip the step when this is false."
    )
    next: StepRef | None = Field(
        default=None, description="Step to run next (default: the following one)."
    )
    description: str | None = None
    label: str | None = Field(
        default=None,
        min_length=1,
        max_length=80,
        description="How people see the step in the UI (default: its id in words).",
    )


class EmailStep(StepBase):
    email: EmailAction


class TaskStep(StepBase):
    task: TaskAction


class WaitStep(StepBase):
    wait: WaitAction


class WaitForStep(StepBase):
    wait_for: WaitForAction


class BranchStep(StepBase):
    branch: BranchAction


class UpdateStep(StepBase):
    update: UpdateAction


class EnrollStep(StepBase):
    enroll: EnrollAction


class NotifyStep(StepBase):
    notify: NotifyAction


class WebhookStep(StepBase):
    webhook: WebhookAction


class EndStep(StepBase):
    end: EndAction = Field(default_factory=EndAction)


def step_action(value: Any) -> str | None:
    """The action key of a raw or parsed step (the union's discriminator)."""
    if isinstance(value, dict):
        found = [a for a in ACTIONS if a in value]
        return found[0] if len(found) == 1 else None
    for action in ACTIONS:
        if isinstance(value, StepBase) and action in type(value).model_fields:
            return action
    return None


Step = Annotated[
    Annotated[EmailStep, Tag("email")]
    | Annotated[TaskStep, Tag("task")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[WaitForStep, Tag("wait_for")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[UpdateStep, Tag("update")]
    | Annotated[EnrollStep, Tag("enroll")]
    | Annotated[NotifyStep, Tag("notify")]
    | Annotated[WebhookStep, Tag("webhook")]
    | Annotated[EndStep, Tag("end")],
    Discriminator(
        step_action,
        custom_error_type="step_action",
        custom_error_message="a step needs exactly one action: " + ", ".join(ACTIONS),
    ),
]


class Playbook(Model):
    """A playbook: who enters, what happens to them, and when they leave."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        frozen=True,
        title="Playbook",
        json_schema_extra={"$comment": "Customer-success playbook, see docs/language.md"},
    )

    playbook: Annotated[str, Field(pattern=ID_PATTERN, description="Playbook id.")]
    name: str = Field(min_length=1)
    description: str | None = None
    trigger: Trigger | None = None
    exit: Exit | None = None
    goal: Goal | None = None
    reenroll: Annotated[str, Field(description="never | always | a minimum gap (duration).")] = (
        "never"
    )
    defaults: Defaults = Field(default_factory=Defaults)
    steps: list[Step] = Field(min_length=1)

    @field_validator("reenroll")
    @classmethod
    def _reenroll(cls, value: str) -> str:
        # A field validator (not a model one) so the error points at the 'reenroll' line.
        if value not in ("never", "always"):
            try:
                parse_duration(value)
            except ValueError:
                raise ValueError(f"must be 'never', 'always' or {DURATION_HELP}") from None
        return value


class MetricThreshold(Model):
    metric: str
    at_least: float


class MilestoneDefinition(Model):
    """A usage fact that marks progress: an event (counted, filtered) or a metric threshold."""

    description: str | None = None
    event: str | None = None
    count: Annotated[int, Field(ge=1)] = 1
    where: dict[str, Any] = Field(
        default_factory=dict, description="Event properties that must match exactly."
    )
    metric: str | None = None
    at_least: float | None = None

    @model_validator(mode="after")
    def _kind(self) -> MilestoneDefinition:
        if (self.event is None) == (self.metric is None):
            raise ValueError("a milestone needs exactly one of 'event' or 'metric'")
        if self.metric is not None and self.at_least is None:
            raise ValueError("a metric milestone needs 'at_least'")
        return self


class MilestoneFile(Model):
    """`playbooks/milestones.yaml`: the milestones every playbook can refer to."""

    milestones: dict[Annotated[str, Field(pattern=ID_PATTERN)], MilestoneDefinition]
