"""The task activities: `create_task` for a task step, `escalate_task` for an overdue one and
`close_task` for one that timed out.

Each creates its task once, keyed by enrollment, step and iteration (an escalation by the
task it escalates and its link in the chain), so a retry returns the task an earlier
attempt made. The enrollment part is the enrollment's own key, not its workflow ID, which a
re-enrollment of the customer reuses: each enrollment creates its own tasks.

Decisions that must not change on replay are made here and returned: who a `role:` task
goes to (round-robin or fewest open tasks, `assign`), its due date and when each link of its
escalation chain fires (on the assignee's working days, `engine.language.workdays`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import StoreActivities, require_customer
from activities.heartbeat import heartbeating
from engine.errors import ErrorType, TemplateRenderError
from engine.language.plan import TaskPlan
from engine.language.templates import render_text
from engine.language.workdays import WorkCalendar, parse_time_off
from engine.messages import (
    ActivityName,
    CloseTaskInput,
    CreateTaskInput,
    EscalateTaskInput,
    TaskRef,
)
from engine.statuses import TaskStatus
from engine.store import repository
from engine.store.context import customer_snapshot, evaluation_context, team_member
from engine.store.models import Customer, RoleCursor, Task, TeamMember


class TaskActivities(StoreActivities):
    """Tasks for the customer's team, in the store."""

    @activity.defn(name=ActivityName.CREATE_TASK)
    @heartbeating
    def create_task(self, input: CreateTaskInput) -> TaskRef:
        """Create the step's task once (keyed by enrollment, step and iteration)."""
        enrollment = input.enrollment_key or input.enrollment_id  # no key: started before keys
        key = f"{enrollment}:{input.step_id}:{input.iteration}"
        task = input.task
        with self.sessions.begin() as session:
            existing = session.scalar(select(Task).where(Task.idempotency_key == key))
            if existing is not None:  # a retry: the assignee was chosen once, keep it
                return _ref(session, existing, task, input.now)
            customer = require_customer(session, input.customer_id)
            context = evaluation_context(
                customer_snapshot(session, customer, input.now.date()),
                input.now,
                input.playbook,
                input.event,
            )
            title = _render_or_source(task.title, context)
            description = _render_or_source(task.description, context) if task.description else None
            assignee, assigned_by = _choose(session, customer, task.assignee, task.assign)
            calendar = _calendar(session, assignee)
            due = calendar.add(input.now, task.due_seconds) if task.due_seconds else None
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
                run_key=enrollment,
            )
            row.assigned_by = assigned_by
            return _ref(session, row, task, input.now)

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
            key = f"{input.task_id}:escalation"
            if input.level:
                key = f"{key}:{input.level}"
            existing = session.scalar(select(Task).where(Task.idempotency_key == key))
            if existing is not None:
                return TaskRef.model_validate(existing)
            assignee, assigned_by = _choose(session, customer, input.escalate_to, "round_robin")
            row, created = repository.create_task(
                session,
                key,
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
                due_at=_calendar(session, assignee).add(input.now, 86_400),
                priority="urgent",
                outcomes=["done"],
                escalation_of=original.id,
                run_key=original.run_key,  # the escalated task's run
            )
            row.assigned_by = assigned_by
            if created:
                original.escalated_at = input.now
            return TaskRef.model_validate(row)

    @activity.defn(name=ActivityName.CLOSE_TASK)
    @heartbeating
    def close_task(self, input: CloseTaskInput) -> None:
        """Cancel a task the playbook stopped waiting for, with the reason on the task."""
        with self.sessions.begin() as session:
            if repository.get_task(session, input.task_id) is not None:
                repository.cancel_task(session, input.task_id, reason=input.reason)


def _ref(session: Session, row: Task, plan: TaskPlan, now: datetime) -> TaskRef:
    """The task for the workflow, with when each link of its escalation chain fires.

    Each link's delay runs from the previous link, on the assignee's working days.
    """
    calendar = _calendar(session, row.assignee_email)
    escalate_at: list[datetime] = []
    at = now
    for link in plan.escalations:
        at = calendar.add(at, link.after_seconds)
        escalate_at.append(at)
    return TaskRef.model_validate(row).model_copy(
        update={"assigned_by": row.assigned_by, "escalate_at": escalate_at}
    )


def _choose(
    session: Session, customer: Customer, assignee: str, assign: str
) -> tuple[str | None, str]:
    """Who a task goes to, and how they were chosen (recorded on the task)."""
    if assignee.startswith("role:"):
        role = assignee.removeprefix("role:")
        members = [
            m
            for m in session.scalars(select(TeamMember).order_by(TeamMember.email))
            if role in (m.roles or []) and m.disabled_at is None
        ]
        if not members:
            return customer.owner_email, "owner"
        if assign == "least_open":
            return _least_open(session, members), "least_open"
        return _round_robin(session, role, members), "round_robin"
    if assignee == "owner":
        return customer.owner_email, "owner"
    if assignee == "manager":
        owner = team_member(session, customer.owner_email)
        if owner and owner.manager_email:
            return owner.manager_email, "manager"
        return customer.owner_email, "owner"
    return assignee, "address"


def _round_robin(session: Session, role: str, members: list[TeamMember]) -> str:
    """The member after the role's last pick, in address order; the pick is remembered."""
    cursor = session.scalar(select(RoleCursor).where(RoleCursor.role == role).with_for_update())
    if cursor is None:
        cursor = RoleCursor(role=role)
        session.add(cursor)
    emails = [m.email for m in members]
    after = [e for e in emails if cursor.last_email is None or e > cursor.last_email]
    chosen = after[0] if after else emails[0]
    cursor.last_email = chosen
    return chosen


def _least_open(session: Session, members: list[TeamMember]) -> str:
    """The member with the fewest open tasks (ties: address order)."""
    emails = [m.email for m in members]
    counts = dict(
        session.execute(
            select(Task.assignee_email, func.count())
            .where(Task.assignee_email.in_(emails), Task.status == TaskStatus.OPEN.value)
            .group_by(Task.assignee_email)
        ).all()
    )
    return min(emails, key=lambda e: (counts.get(e, 0), e))


def _calendar(session: Session, email: str | None) -> WorkCalendar:
    """The member's working calendar; someone outside the team works every day in UTC."""
    member = team_member(session, email)
    if member is None:
        return WorkCalendar(days=tuple(range(7)))
    return member_calendar(member)


def member_calendar(member: TeamMember) -> WorkCalendar:
    """A team member's `WorkCalendar` from their stored columns."""
    return WorkCalendar(
        timezone=member.timezone or "UTC",
        days=tuple(member.working_days if member.working_days is not None else range(5)),
        start_minute=member.work_start_minute,
        end_minute=member.work_end_minute,
        time_off=parse_time_off(member.time_off or []),
    )


def _render_or_source(source: str, context: dict[str, Any]) -> str:
    """The rendered text, or the template itself with the error: a task is never lost to it."""
    try:
        return render_text(source, context)
    except TemplateRenderError as exc:
        return f"{source} [render error: {exc}]"
