"""Tasks: complete one and tell its enrollment, hand one to someone else."""

from __future__ import annotations

from temporalio.service import RPCError, RPCStatusCode

from engine.client.playbook import EnrollmentHandle
from engine.errors import Conflict, ConflictError, Invalid, NotFound, Unavailable
from engine.messages import TaskCompletion
from engine.services.container import Services
from engine.statuses import TaskStatus
from engine.store import repository
from engine.store.models import Task


async def complete_task(
    svc: Services, task_id: str, outcome: str, by: str, note: str | None = None
) -> Task:
    """Close the task in the store, then signal the enrollment waiting on it.

    Completing again with the same outcome is a no-op (a retry); another outcome is a
    `Conflict`. An enrollment that is gone no longer waits, so it is not an error; Temporal
    being unreachable is `Unavailable`, with the task already completed.
    """
    with svc.sessions.begin() as session:
        if repository.get_task(session, task_id) is None:
            raise NotFound(f"no task '{task_id}'")
        try:
            task = repository.complete_task(session, task_id, outcome, by, note=note)
        except ConflictError as exc:
            raise Conflict(str(exc)) from None
        except ValueError as exc:
            raise Invalid(str(exc)) from None
    if task.enrollment_id and task.escalation_of is None:
        try:
            await EnrollmentHandle.get(svc.client, task.enrollment_id).task_completed(
                TaskCompletion(task_id=task.id, outcome=outcome, note=note, completed_by=by)
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise Unavailable(
                    f"task completed, but Temporal is unavailable: {exc.message}"
                ) from None
    return task


def reassign_task(svc: Services, task_id: str, assignee: str) -> Task:
    """Give an open task to ``assignee``; the workflow waits on the task id, not a person."""
    with svc.sessions.begin() as session:
        task = repository.get_task(session, task_id)
        if task is None:
            raise NotFound(f"no task '{task_id}'")
        if task.status != TaskStatus.OPEN:
            raise Conflict(f"task is {task.status}; only open tasks can be reassigned")
        task.assignee_email = assignee.lower()
        return task
