"""One task: its page (customer, QBR brief, enrollment), completing it and handing it on."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from engine.api.errors import status_code
from engine.services import ServiceError, tasks
from engine.store import repository
from engine.store.models import Task, TeamMember, normalize_email
from engine.web.brief import build_brief
from engine.web.dependencies import FormStr, ViewerDep, services_of
from engine.web.rendering import bad_form, error_page, flash_to, render
from engine.web.security import Viewer, same, team_members
from engine.web.timeline import enrollment_views

router = APIRouter()


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
            brief = build_brief(session, customer.id, exclude_task=task.id)
        enrollment = repository.latest_enrollment(session, task.enrollment_id or "")
        escalation_of = session.get(Task, task.escalation_of) if task.escalation_of else None
        members = team_members(session)
        milestones = repository.get_milestones(session, customer.id) if customer else {}
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
    return flash_to(request, "/inbox", f"Completed “{done.title}”: {outcome}.", link)


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
        moved = tasks.reassign_task(services_of(request), task_id, target.email)
    except ServiceError as exc:
        return await _task_page(
            request, viewer, task_id, error=str(exc), status_code=status_code(exc)
        )
    return flash_to(request, "/inbox", f"Reassigned “{moved.title}” to {target.name}.")
