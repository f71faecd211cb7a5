"""Tasks: complete (one or several), undo a completion, snooze, reassign and comment.

A completion reaches the enrollment at once, carrying the undo window
(`Settings.task_undo_seconds`): the workflow holds it that long before moving on, and
`undo_completion` takes it back through the `reopen_task` update, which the workflow refuses
once it has acted. So the store and the enrollment never disagree about an undone task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from engine.client.playbook import EnrollmentHandle
from engine.errors import Conflict, ConflictError, Invalid, NotFound, Unavailable
from engine.messages import TaskCompletion, TaskReopen
from engine.services.container import Services
from engine.services.team import require_member
from engine.statuses import TaskStatus
from engine.store import repository
from engine.store.models import Task, TaskComment, utcnow


@dataclass(frozen=True)
class BulkResult:
    """What `complete_tasks` did to each task: the task, or why it was refused."""

    completed: list[Task]
    refused: dict[str, str]


async def complete_task(
    svc: Services, task_id: str, outcome: str, by: str, note: str | None = None
) -> Task:
    """Close the task in the store, then signal the enrollment waiting on it.

    Completing again with the same outcome is a no-op (a retry); another outcome is a
    `Conflict`. An enrollment that is gone no longer waits, so it is not an error; Temporal
    being unreachable is `Unavailable`, with the task already completed. The completion can
    be undone for `Settings.task_undo_seconds` (`undo_completion`).
    """
    undo = svc.settings.task_undo_seconds
    with svc.sessions.begin() as session:
        if repository.get_task(session, task_id) is None:
            raise NotFound(f"no task '{task_id}'")
        try:
            task = repository.complete_task(session, task_id, outcome, by, note=note)
        except ConflictError as exc:
            raise Conflict(str(exc)) from None
        except ValueError as exc:
            raise Invalid(str(exc)) from None
        if undo and task.undo_until is None and task.completed_at is not None:
            task.undo_until = task.completed_at + timedelta(seconds=undo)
    if task.enrollment_id and task.escalation_of is None:
        try:
            await EnrollmentHandle.get(svc.client, task.enrollment_id).task_completed(
                TaskCompletion(
                    task_id=task.id,
                    outcome=outcome,
                    note=note,
                    completed_by=by,
                    undo_seconds=undo,
                )
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise Unavailable(
                    f"task completed, but Temporal is unavailable: {exc.message}"
                ) from None
    return task


async def complete_tasks(
    svc: Services, task_ids: list[str], outcome: str, by: str, note: str | None = None
) -> BulkResult:
    """Complete several tasks with the same outcome; each is completed or refused alone."""
    completed: list[Task] = []
    refused: dict[str, str] = {}
    for task_id in dict.fromkeys(task_ids):
        try:
            completed.append(await complete_task(svc, task_id, outcome, by, note))
        except (NotFound, Conflict, Invalid) as exc:
            refused[task_id] = str(exc)
    return BulkResult(completed=completed, refused=refused)


async def undo_completion(svc: Services, task_id: str, by: str) -> Task:
    """Reopen a task completed less than `Settings.task_undo_seconds` ago.

    The enrollment is asked first (`reopen_task`): it refuses once it has acted on the
    completion, or has ended, and then the task stays completed (`Conflict`). A task of no
    enrollment (or an escalation) simply reopens.
    """
    with svc.sessions() as session:
        task = repository.get_task(session, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}'")
        if task.status != TaskStatus.COMPLETED:
            raise Conflict(f"task is {task.status}; only a completed task can be reopened")
        if task.undo_until is None or task.undo_until <= utcnow():
            raise Conflict("the completion can no longer be undone")
        enrollment_id = task.enrollment_id if task.escalation_of is None else None
    if enrollment_id:
        try:
            await EnrollmentHandle.get(svc.client, enrollment_id).reopen_task(
                TaskReopen(task_id=task_id, by=by)
            )
        except WorkflowUpdateFailedError as exc:
            cause = getattr(exc.cause, "message", None) or str(exc)
            raise Conflict(f"the completion can no longer be undone: {cause}") from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                # The enrollment has ended: it acted on the completion (or nothing waits).
                raise Conflict(
                    "the completion can no longer be undone: the enrollment has ended"
                ) from None
            raise Unavailable(f"Temporal is unavailable: {exc.message}") from None
    with svc.sessions.begin() as session:
        task = repository.reopen_task(session, task_id)
        session.add(TaskComment(task_id=task_id, author=by, body="Reopened (completion undone)."))
        return task


def reassign_task(svc: Services, task_id: str, assignee: str, by: str | None = None) -> Task:
    """Give an open task to ``assignee``, a team member; the workflow waits on the task id."""
    with svc.sessions.begin() as session:
        task = repository.get_task(session, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}'")
        if task.status != TaskStatus.OPEN:
            raise Conflict(f"task is {task.status}; only open tasks can be reassigned")
        require_member(session, assignee)
        task.assignee_email = assignee.lower()
        task.assigned_by = "reassigned"
        if by:
            session.add(TaskComment(task_id=task_id, author=by, body=f"Reassigned to {assignee}."))
        return task


def snooze_task(svc: Services, task_id: str, until: datetime | None) -> Task:
    """Hide an open task from its inbox until ``until`` (None wakes it now).

    Snoozing moves neither the due date nor the enrollment's escalations: it is the
    assignee's view, not the playbook's promise.
    """
    if until is not None and until.tzinfo is None:
        raise Invalid("'until' needs a time zone")
    with svc.sessions.begin() as session:
        task = repository.get_task(session, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}'")
        if task.status != TaskStatus.OPEN:
            raise Conflict(f"task is {task.status}; only open tasks can be snoozed")
        task.snoozed_until = until
        return task


def comment_on_task(svc: Services, task_id: str, author: str, body: str) -> TaskComment:
    """Leave a note on a task (open or closed)."""
    if not body.strip():
        raise Invalid("a comment needs some text")
    with svc.sessions.begin() as session:
        if repository.get_task(session, task_id) is None:
            raise NotFound(f"no task '{task_id}'")
        comment = TaskComment(task_id=task_id, author=author, body=body.strip())
        session.add(comment)
        session.flush()
        return comment


def task_comments(svc: Services, task_id: str) -> list[TaskComment]:
    """A task's comments, oldest first."""
    with svc.sessions() as session:
        query = select(TaskComment).where(TaskComment.task_id == task_id)
        return list(session.scalars(query.order_by(TaskComment.id)))
