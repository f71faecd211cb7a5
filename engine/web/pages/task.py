"""One task: its page (customer, QBR brief, enrollment, comments), and what a CSM does with
it: complete (one, or several from the inbox), undo a completion, snooze, reassign, comment."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from urllib.parse import quote
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from engine.api.errors import status_code
from engine.services import ServiceError, tasks
from engine.store import repository
from engine.store.models import Task, TeamMember, normalize_email, utcnow
from engine.web.brief import build_brief
from engine.web.dependencies import FormList, FormStr, ViewerDep, services_of
from engine.web.rendering import bad_form, error_page, flash_to, render
from engine.web.security import Viewer, same, team_members
from engine.web.timeline import enrollment_views

router = APIRouter()

# The snooze menu: how long, in the viewer's words. "tomorrow" and "monday" mean 09:00 in
# the viewer's zone, the start of a default working day.
SNOOZE_CHOICES = [
    ("1h", "for an hour"),
    ("tomorrow", "until tomorrow 09:00"),
    ("monday", "until Monday 09:00"),
    ("week", "for a week"),
]


def snooze_until(choice: str, now: datetime, zone: str) -> datetime | None:
    """When a snooze chosen from `SNOOZE_CHOICES` ends; None for an unknown choice."""
    local = now.astimezone(ZoneInfo(zone))
    nine = time(9, tzinfo=local.tzinfo)
    if choice == "1h":
        return now + timedelta(hours=1)
    if choice == "week":
        return now + timedelta(days=7)
    if choice == "tomorrow":
        return datetime.combine(local.date() + timedelta(days=1), nine)
    if choice == "monday":
        return datetime.combine(local.date() + timedelta(days=7 - local.weekday()), nine)
    return None


def _in_zone(value: datetime, zone: str) -> str:
    local = value.astimezone(ZoneInfo(zone))
    return local.strftime("%a %d %b %H:%M ") + local.strftime("%Z")


def _load_task(session: Session, viewer: Viewer, task_id: str) -> tuple[Task | None, int, str]:
    task = repository.get_task(session, task_id)
    if task is None:
        return None, 404, f"There is no task {task_id}."
    if not viewer.can_see_task(task):
        return None, 403, "This task belongs to someone else's inbox."
    return task, 200, ""


async def _task_page(
    request: Request,
    viewer: Viewer,
    task_id: str,
    *,
    error: str | None = None,
    status_code: int = 200,
) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        task, code, message = _load_task(session, viewer, task_id)
        if task is None:
            return error_page(request, viewer, code, message)
        customer = repository.get_customer(session, task.customer_id or "")
        brief = None
        if task.playbook_id == "qbr" and customer is not None:
            brief = build_brief(
                session, customer.id, exclude_task=task.id, scorecard=services.project.scorecard
            )
        enrollment = repository.latest_enrollment(session, task.enrollment_id or "")
        escalation_of = session.get(Task, task.escalation_of) if task.escalation_of else None
        members = team_members(session)
        milestones = repository.get_milestones(session, customer.id) if customer else {}
    comments = tasks.task_comments(services, task_id)
    views = await enrollment_views(services.client, [enrollment] if enrollment else [])
    return render(
        request,
        "task.html",
        viewer,
        status_code=status_code,
        task=task,
        customer=customer,
        brief=brief,
        enrollment=views[0] if views else None,
        escalation_of=escalation_of,
        members=members,
        names={m.email: m.name for m in members},
        milestones=sorted(milestones.values(), key=lambda m: m.reached_at),
        error=error,
        outcomes=list(task.outcomes or []) or ["done"],
        comments=comments,
        snooze_choices=SNOOZE_CHOICES,
        snoozed=task.snoozed_until is not None and task.snoozed_until > utcnow(),
    )


@router.get("/tasks/{task_id}")
async def task_page(request: Request, task_id: str, viewer: ViewerDep) -> Response:
    return await _task_page(request, viewer, task_id)


def _refuse_form(request: Request, viewer: Viewer, csrf: str, task_id: str) -> Response | None:
    """The error page for a task form with a stale CSRF token, or for a task that does not
    exist or is not the viewer's to change; None if the form may go ahead."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    with services_of(request).sessions() as session:
        task, code, message = _load_task(session, viewer, task_id)
    return error_page(request, viewer, code, message) if task is None else None


@router.post("/tasks/{task_id}/complete")
async def complete_task(
    request: Request,
    task_id: str,
    viewer: ViewerDep,
    csrf: FormStr = "",
    outcome: FormStr = "",
    note: FormStr = "",
) -> Response:
    refused = _refuse_form(request, viewer, csrf, task_id)
    if refused is not None:
        return refused
    if not outcome:
        return await _task_page(
            request, viewer, task_id, error="Choose an outcome.", status_code=422
        )
    try:
        done = await tasks.complete_task(
            services_of(request), task_id, outcome, viewer.email, note.strip() or None
        )
    except ServiceError as exc:
        return await _task_page(
            request, viewer, task_id, error=str(exc), status_code=status_code(exc)
        )
    link = f"/customers/{quote(done.customer_id)}" if done.customer_id else None
    message = f"Completed “{done.title}”: {outcome}."
    return flash_to(request, "/inbox", message, link, undo=_undoable([done]))


def _undoable(done: list[Task]) -> list[str]:
    """The tasks among ``done`` whose completion can still be undone (the flash's button)."""
    now = utcnow()
    return [t.id for t in done if t.undo_until is not None and t.undo_until > now]


def _visible(request: Request, viewer: Viewer, task_ids: list[str]) -> tuple[list[str], int]:
    """The ids among ``task_ids`` the viewer may change, and how many were left out."""
    with services_of(request).sessions() as session:
        ok = [i for i in dict.fromkeys(task_ids) if _load_task(session, viewer, i)[0] is not None]
    return ok, len(set(task_ids)) - len(ok)


@router.post("/tasks/complete")
async def complete_several(
    request: Request,
    viewer: ViewerDep,
    csrf: FormStr = "",
    outcome: FormStr = "",
    back: FormStr = "",
    task_ids: FormList = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """Complete the tasks checked in the inbox with one outcome; each one alone. Back to
    the inbox as it was filtered (``back``, its query string)."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    inbox = "/inbox?" + back.lstrip("?")[:1000] if back else "/inbox"
    ids, hidden = _visible(request, viewer, task_ids)
    if not ids or not outcome:
        return flash_to(request, inbox, "Check some tasks and choose an outcome.")
    try:
        result = await tasks.complete_tasks(services_of(request), ids, outcome, viewer.email)
    except ServiceError as exc:  # Temporal unreachable: the tasks so far are completed
        return flash_to(request, inbox, str(exc))
    count = len(result.completed)
    parts = [f"Completed {count} task{'' if count == 1 else 's'}: {outcome}." if count else ""]
    with services_of(request).sessions() as session:
        for task_id, reason in result.refused.items():
            task = session.get(Task, task_id)
            title = task.title if task else task_id
            parts.append(f"Not “{title}”: {reason}.")
    if hidden:
        parts.append(f"{hidden} not yours left alone.")
    message = " ".join(p for p in parts if p)
    return flash_to(request, inbox, message, undo=_undoable(result.completed))


@router.post("/tasks/undo")
async def undo_completions(
    request: Request,
    viewer: ViewerDep,
    csrf: FormStr = "",
    task_ids: FormList = [],  # noqa: B006 - FastAPI copies defaults per request
) -> Response:
    """The flash's Undo: reopen the tasks just completed, while the enrollment still holds
    their completions (`engine.services.tasks.undo_completion`)."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    ids, _ = _visible(request, viewer, task_ids)
    reopened: list[Task] = []
    refused: list[str] = []
    for task_id in ids:
        try:
            reopened.append(
                await tasks.undo_completion(services_of(request), task_id, viewer.email)
            )
        except ServiceError as exc:
            refused.append(str(exc))
    parts = []
    if len(reopened) == 1:
        parts.append(f"Reopened “{reopened[0].title}”.")
    elif reopened:
        parts.append(f"Reopened {len(reopened)} tasks.")
    parts.extend(f"Not undone: {reason}." for reason in dict.fromkeys(refused))
    target = f"/tasks/{ids[0]}" if len(ids) == 1 else "/inbox"
    return flash_to(request, target, " ".join(parts) or "Nothing to undo.")


@router.post("/tasks/{task_id}/snooze")
async def snooze_task(
    request: Request, task_id: str, viewer: ViewerDep, csrf: FormStr = "", until: FormStr = ""
) -> Response:
    """Hide the task from the inbox for a while (``wake`` brings it back now)."""
    refused = _refuse_form(request, viewer, csrf, task_id)
    if refused is not None:
        return refused
    when = None if until == "wake" else snooze_until(until, utcnow(), viewer.zone)
    if when is None and until != "wake":
        return await _task_page(
            request, viewer, task_id, error="Choose how long to snooze.", status_code=422
        )
    try:
        task = tasks.snooze_task(services_of(request), task_id, when)
    except ServiceError as exc:
        return await _task_page(
            request, viewer, task_id, error=str(exc), status_code=status_code(exc)
        )
    if when is None:
        return flash_to(request, f"/tasks/{task_id}", f"“{task.title}” is back in the inbox.")
    message = f"Snoozed “{task.title}” until {_in_zone(when, viewer.zone)}."
    return flash_to(request, "/inbox", message)


@router.post("/tasks/{task_id}/comments")
async def comment_on_task(
    request: Request, task_id: str, viewer: ViewerDep, csrf: FormStr = "", body: FormStr = ""
) -> Response:
    refused = _refuse_form(request, viewer, csrf, task_id)
    if refused is not None:
        return refused
    try:
        tasks.comment_on_task(services_of(request), task_id, viewer.email, body[:4000])
    except ServiceError as exc:
        return await _task_page(
            request, viewer, task_id, error=str(exc), status_code=status_code(exc)
        )
    return flash_to(request, f"/tasks/{task_id}", "Comment added.")


@router.post("/tasks/{task_id}/reassign")
async def reassign_task(
    request: Request, task_id: str, viewer: ViewerDep, csrf: FormStr = "", assignee: FormStr = ""
) -> Response:
    refused = _refuse_form(request, viewer, csrf, task_id)
    if refused is not None:
        return refused
    with services_of(request).sessions() as session:
        target = session.get(TeamMember, normalize_email(assignee)) if assignee else None
    if target is None:
        problem = "Choose a team member to hand the task to."
        return await _task_page(request, viewer, task_id, error=problem, status_code=409)
    try:
        moved = tasks.reassign_task(services_of(request), task_id, target.email, viewer.email)
    except ServiceError as exc:
        return await _task_page(
            request, viewer, task_id, error=str(exc), status_code=status_code(exc)
        )
    return flash_to(request, "/inbox", f"Reassigned “{moved.title}” to {target.name}.")
