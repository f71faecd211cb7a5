"""Messages in and out of the interpreter workflow: input, signals, updates, query results.

Pure pydantic models (no I/O, no jinja2/yaml), safe to import from workflow code.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from engine.milestones import MilestoneTracker
from engine.plan import CompiledPlan

TASK_QUEUE = "playbooks"
WORKFLOW_NAME = "PlaybookWorkflow"
# Custom search attributes the engine sets (registered by `playbook up` / the test setup).
SA_PLAYBOOK = "PlaybookId"
SA_VERSION = "PlaybookVersion"
SA_CUSTOMER = "CustomerId"
SA_STEP = "PlaybookStep"
SEARCH_ATTRIBUTES = (SA_PLAYBOOK, SA_VERSION, SA_CUSTOMER, SA_STEP)

Outcome = str


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


class SkipRequest(BaseModel):
    """Operator update: jump to a step (or 'end')."""

    step: str
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


class EnrollmentInput(BaseModel):
    """The single input of `PlaybookWorkflow`: the plan itself, so edits never touch history."""

    plan: CompiledPlan
    customer_id: str
    enrollment_id: str
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


class EnrollmentStatus(BaseModel):
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
    status: Literal["completed", "exited", "goal_reached", "cancelled"] = "completed"
    records: list[StepRecord] = Field(default_factory=list)
