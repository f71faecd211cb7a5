"""The compiled plan: what the interpreter workflow runs.

A plan is plain, JSON-serialisable data with every reference resolved, every duration in
seconds and every expression and template already checked. It travels inside the
workflow's input, so a running enrollment keeps the exact plan it started with.

This module is imported by workflow code: it must stay free of jinja2, yaml and I/O.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

END = "end"
StepKind = Literal[
    "email", "task", "wait", "wait_for", "branch", "update", "enroll", "notify", "webhook", "end"
]
RecipientKind = Literal["contacts", "owner", "manager", "role", "address"]


class PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Fields added after plans were first hashed: left out of the dump while None, so a
    # plan that does not use them keeps its version (and its recorded payloads their shape).
    added_fields: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unused_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if self.added_fields and isinstance(data, dict):
            for name in self.added_fields:
                if data.get(name, 0) is None:
                    del data[name]
        return data


class WindowPlan(PlanModel):
    """Send window: weekday numbers (Monday=0) and local opening minutes [start, end)."""

    days: list[int]
    start_minute: int
    end_minute: int


class SenderPlan(PlanModel):
    email: str
    name: str | None = None


class ContentPlan(PlanModel):
    """What an email says: its subject and the template keys of its bodies."""

    subject: str
    preheader: str | None = None
    html_template: str
    text_template: str | None = None


class VariantPlan(ContentPlan):
    """One variant of an email step: its weight, content, and that content's locale versions."""

    name: str
    weight: int
    locales: dict[str, ContentPlan] = Field(default_factory=dict)


class CapPlan(PlanModel):
    """At most ``max`` emails to one contact in ``days`` calendar days of the contact's zone."""

    max: int
    days: int


class StepDeliveryPlan(PlanModel):
    """A playbook's or step's standing under the contact budget."""

    priority: int = 0
    on_cap: Literal["defer", "skip"] = "defer"
    exempt: bool = False


class DeliveryPlan(PlanModel):
    """The project's delivery policy (playbooks/policies.yaml) as it applies to one playbook."""

    caps: list[CapPlan] = Field(default_factory=list)
    playbook: StepDeliveryPlan = StepDeliveryPlan()
    steps: dict[str, StepDeliveryPlan] = Field(default_factory=dict)
    holidays: bool = False
    company_days: dict[str, str] = Field(
        default_factory=dict, description="ISO date -> name of a company day off."
    )

    def for_step(self, step_id: str) -> StepDeliveryPlan:
        return self.steps.get(step_id, self.playbook)


class EmailPlan(PlanModel):
    """An email: subject source plus keys into `CompiledPlan.templates` for the bodies."""

    template: str | None = None
    subject: str
    preheader: str | None = None
    html_template: str
    text_template: str | None = None
    files: list[str] = Field(
        default_factory=list, description="Every template file this email renders from."
    )
    to: str | None = None
    recipient: RecipientKind = "contacts"
    recipient_value: str | None = None
    window: WindowPlan | None = None
    sender: SenderPlan | None = None
    reply_to: str | None = None
    variants: list[VariantPlan] = Field(default_factory=list)
    locales: dict[str, ContentPlan] = Field(
        default_factory=dict, description="Locale tag -> the template's version for it."
    )


class EscalationPlan(PlanModel):
    """One link of a task's escalation chain: to whom, this long after the previous link."""

    to: str
    after_seconds: int


class TaskPlan(PlanModel):
    title: str
    description: str | None = None
    assignee: str = "owner"
    due_seconds: int | None = None
    priority: str = "normal"
    outcomes: list[str]
    wait: bool = False
    escalate_after_seconds: int | None = None
    escalate_to: str = "manager"
    on_outcome: dict[str, str] = Field(default_factory=dict)
    # Plans compiled before chains carry `escalate_after_seconds`; newer ones `escalations`
    # (delays on the assignee's working days), so recorded histories replay unchanged.
    escalations: list[EscalationPlan] = Field(default_factory=list)
    timeout_seconds: int | None = None
    on_timeout: str | None = Field(default=None, description="Step to go to on timeout.")
    timeout_outcome: str | None = Field(default=None, description="Outcome assumed on timeout.")
    assign: str = "round_robin"


class NotifyPlan(PlanModel):
    """A `notify` or `webhook` step: where it goes and its body (templates in strings)."""

    channel: str
    endpoint: str
    body: dict[str, Any]


class WaitPlan(PlanModel):
    added_fields = frozenset({"on_passed"})

    seconds: int | None = None
    until: str | None = None
    at_minute: int | None = None
    on_passed: str | None = Field(
        default=None,
        description="Where to go when the 'until' date has passed (already when the wait "
        "starts, or once a moved date puts it in the past); default: the next step.",
    )


class WaitForPlan(PlanModel):
    added_fields = frozenset({"when"})

    milestone: str | None = None
    event: str | None = None
    when: str | None = None  # a condition over customer data: waited for until it holds
    condition: str | None = None
    timeout_seconds: int | None = None
    on_timeout: str | None = None


class BranchCasePlan(PlanModel):
    condition: str
    goto: str


class BranchPlan(PlanModel):
    cases: list[BranchCasePlan]
    otherwise: str


class UpdatePlan(PlanModel):
    set: dict[str, Any] = Field(default_factory=dict)
    add_tags: list[str] = Field(default_factory=list)
    remove_tags: list[str] = Field(default_factory=list)


class EnrollPlan(PlanModel):
    playbook: str


class EndPlan(PlanModel):
    outcome: str = "completed"


class StepPlan(PlanModel):
    """One step with its successor resolved (`next` is a step id or 'end')."""

    id: str
    kind: StepKind
    line: int
    label: str | None = None  # the step's name for people (`label:`); None: derived by the UI
    condition: str | None = None
    next: str
    email: EmailPlan | None = None
    task: TaskPlan | None = None
    wait: WaitPlan | None = None
    wait_for: WaitForPlan | None = None
    branch: BranchPlan | None = None
    update: UpdatePlan | None = None
    enroll: EnrollPlan | None = None
    notify: NotifyPlan | None = None
    end: EndPlan | None = None


class MilestonePlan(PlanModel):
    name: str
    event: str | None = None
    count: int = 1
    where: dict[str, Any] = Field(default_factory=dict)
    metric: str | None = None
    at_least: float | None = None


class LatePlan(PlanModel):
    """A date trigger's policy for a customer whose trigger date has already passed.

    ``enroll_until``: enroll late while the anchor date (``until``, an expression) is still
    ahead; ``catch_up``: enroll up to ``catch_up_seconds`` after the trigger date; ``skip``:
    only on the trigger date itself.
    """

    policy: Literal["enroll_until", "catch_up", "skip"]
    until: str | None = None
    catch_up_seconds: int | None = None


class TriggerPlan(PlanModel):
    added_fields = frozenset({"late", "change", "cooldown_seconds"})

    kind: Literal["event", "date", "schedule", "manual", "change"]
    event: str | None = None
    date: str | None = None
    every: str | None = None
    before_end_seconds: int | None = None
    after_start_seconds: int | None = None
    condition: str | None = None
    late: LatePlan | None = None
    change: str | None = None  # on_change: enroll when this becomes true
    cooldown_seconds: int | None = None


class ExitPlan(PlanModel):
    on_events: list[str] = Field(default_factory=list)
    condition: str | None = None


class GoalPlan(PlanModel):
    added_fields = frozenset({"when"})

    milestone: str | None = None
    event: str | None = None
    when: str | None = None  # a condition over customer data: reached once it holds
    condition: str | None = None


class CompiledPlan(PlanModel):
    """A whole playbook, ready to run; `version` is the SHA-256 of everything else."""

    playbook: str
    name: str
    description: str | None = None
    version: str = ""
    trigger: TriggerPlan | None = None
    exit: ExitPlan | None = None
    goal: GoalPlan | None = None
    reenroll: Literal["never", "always", "after"] = "never"
    reenroll_after_seconds: int | None = None
    window: WindowPlan | None = None
    sender: SenderPlan | None = None
    reply_to: str | None = None
    start: str
    steps: list[StepPlan]
    milestones: dict[str, MilestonePlan] = Field(default_factory=dict)
    templates: dict[str, str] = Field(
        default_factory=dict, description="Source of every template file the plan renders."
    )
    delivery: DeliveryPlan | None = None

    def step(self, step_id: str) -> StepPlan:
        for step in self.steps:
            if step.id == step_id:
                return step
        raise KeyError(step_id)

    def canonical_json(self) -> str:
        """The plan without its version, as sorted compact JSON: the input to the hash."""
        data = self.model_dump(mode="json", exclude={"version"})
        # Fields added later are left out while unused, so existing plans keep their version.
        if data.get("delivery") is None:
            data.pop("delivery", None)
        for step in data["steps"]:
            for key in ("variants", "locales"):
                if step.get("email") is not None and not step["email"].get(key):
                    step["email"].pop(key, None)
        return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def with_version(self) -> CompiledPlan:
        digest = hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()
        return self.model_copy(update={"version": digest})

    @property
    def short_version(self) -> str:
        return self.version[:12]
