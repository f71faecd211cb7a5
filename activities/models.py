"""Inputs and outputs of every activity: one pydantic model each, no I/O.

Imported by workflow code (to call activities by name with typed arguments) and by the
activity implementations.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.plan import EmailPlan, SenderPlan, TaskPlan
from workflows.models import EventSignal


class DecideInput(BaseModel):
    """Evaluate expressions over the customer's current data (``decide`` local activity)."""

    customer_id: str
    playbook: str
    expressions: list[str] = Field(default_factory=list)
    event: EventSignal | None = None
    now: datetime


class DecideResult(BaseModel):
    found: bool
    timezone: str = "UTC"
    values: list[Any] = Field(default_factory=list)
    errors: list[str | None] = Field(default_factory=list)


class SendEmailInput(BaseModel):
    enrollment_id: str
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


class EmailDelivery(BaseModel):
    contact: str
    status: Literal["captured", "sent", "failed", "suppressed", "unconfirmed"]
    subject: str | None = None
    reason: str | None = None
    message_id: str | None = None


class SendEmailResult(BaseModel):
    deliveries: list[EmailDelivery] = Field(default_factory=list)

    @property
    def summary(self) -> str:
        if not self.deliveries:
            return "no recipients"
        return ", ".join(f"{d.contact} ({d.status})" for d in self.deliveries)


class CreateTaskInput(BaseModel):
    enrollment_id: str
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


class EscalateTaskInput(BaseModel):
    task_id: str
    enrollment_id: str
    playbook: str
    step_id: str
    customer_id: str
    escalate_to: str
    now: datetime


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
    playbook: str
    version: str
    customer_id: str
    cycle_key: str | None = None
    status: str
    current_step: str | None = None
    outcome: str | None = None
    at: datetime
    close_open_tasks: bool = False


class SweepInput(BaseModel):
    """Sweep one date- or schedule-triggered playbook (its latest registered version)."""

    playbook: str


class SweepResult(BaseModel):
    enrolled: list[str] = Field(default_factory=list)
