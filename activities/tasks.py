"""The task activities: `create_task` for a task step and `escalate_task` for an overdue one.

Each creates its task once, keyed by enrollment, step and iteration (an escalation by the
task it escalates), so a retry returns the task an earlier attempt made. The enrollment part
is the enrollment's own key, not its workflow ID, which a re-enrollment of the customer
reuses: each enrollment creates its own tasks.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import StoreActivities, require_customer
from activities.heartbeat import heartbeating
from engine.errors import ErrorType, TemplateRenderError
from engine.language.templates import render_text
from engine.messages import ActivityName, CreateTaskInput, EscalateTaskInput, TaskRef
from engine.store import repository
from engine.store.context import (
    customer_snapshot,
    evaluation_context,
    member_with_role,
    team_member,
)
from engine.store.models import Customer


class TaskActivities(StoreActivities):
    """Tasks for the customer's team, in the store."""

    @activity.defn(name=ActivityName.CREATE_TASK)
    @heartbeating
    def create_task(self, input: CreateTaskInput) -> TaskRef:
        """Create the step's task once (keyed by enrollment, step and iteration)."""
        enrollment = input.enrollment_key or input.enrollment_id  # no key: started before keys
        key = f"{enrollment}:{input.step_id}:{input.iteration}"
        with self.sessions.begin() as session:
            customer = require_customer(session, input.customer_id)
            context = evaluation_context(
                customer_snapshot(session, customer), input.now, input.playbook, input.event
            )
            task = input.task
            title = _render_or_source(task.title, context)
            description = _render_or_source(task.description, context) if task.description else None
            assignee = _assignee(session, customer, task.assignee)
            due = input.now + timedelta(seconds=task.due_seconds) if task.due_seconds else None
            row, _ = repository.create_task(
                session,
                key,
                title,
                enrollment_id=input.enrollment_id,
                playbook_id=input.playbook,
                step_id=input.step_id,
                customer_id=customer.id,
                assignee_email=assignee,
                description=description,
                due_at=due,
                priority=task.priority,
                outcomes=task.outcomes,
            )
            return TaskRef.model_validate(row)

    @activity.defn(name=ActivityName.ESCALATE_TASK)
    @heartbeating
    def escalate_task(self, input: EscalateTaskInput) -> TaskRef:
        """Escalate an overdue task: a linked urgent task for the manager (or whom it names)."""
        with self.sessions.begin() as session:
            original = repository.get_task(session, input.task_id)
            customer = repository.get_customer(session, input.customer_id)
            if original is None or customer is None:
                raise ApplicationError(
                    "task or customer not found", type=ErrorType.INVALID_INPUT, non_retryable=True
                )
            assignee = _assignee(session, customer, input.escalate_to)
            row, created = repository.create_task(
                session,
                f"{input.task_id}:escalation",
                f"Escalation: {original.title}",
                enrollment_id=input.enrollment_id,
                playbook_id=input.playbook,
                step_id=input.step_id,
                customer_id=customer.id,
                assignee_email=assignee,
                description=(
                    f"The task '{original.title}' assigned to "
                    f"{original.assignee_email or 'nobody'} is still open."
                ),
                due_at=input.now + timedelta(days=1),
                priority="urgent",
                outcomes=["done"],
                escalation_of=original.id,
            )
            if created:
                original.escalated_at = input.now
            return TaskRef.model_validate(row)


def _assignee(session: Session, customer: Customer, assignee: str) -> str | None:
    """The address a task goes to; the customer's owner when a manager or role is missing."""
    if assignee == "owner":
        return customer.owner_email
    if assignee == "manager":
        owner = team_member(session, customer.owner_email)
        return owner.manager_email if owner and owner.manager_email else customer.owner_email
    if assignee.startswith("role:"):
        member = member_with_role(session, assignee.removeprefix("role:"))
        return member.email if member else customer.owner_email
    return assignee


def _render_or_source(source: str, context: dict[str, Any]) -> str:
    """The rendered text, or the template itself with the error: a task is never lost to it."""
    try:
        return render_text(source, context)
    except TemplateRenderError as exc:
        return f"{source} [render error: {exc}]"
