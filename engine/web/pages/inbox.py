"""The CSM inbox: the tasks a viewer may see, filtered by assignee and open or closed."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select

from engine.statuses import TaskStatus
from engine.store.models import Customer, Task, TeamMember, utcnow
from engine.web.dependencies import ViewerDep, services_of
from engine.web.rendering import render
from engine.web.security import Viewer, team_members

router = APIRouter()


@router.get("/")
def home() -> Response:
    return RedirectResponse("/inbox", status_code=303)


def _assignee_choices(viewer: Viewer, members: list[TeamMember]) -> list[tuple[str, str]]:
    """The inbox's "whose tasks" filter: admins pick anyone, managers their team."""
    if viewer.is_admin:
        return [
            ("all", "everyone"),
            ("me", "me"),
            ("unassigned", "unassigned"),
            *[(m.email, m.name) for m in members if m.email != viewer.email],
        ]
    if viewer.is_manager:
        reports = [(m.email, m.name) for m in members if m.email in viewer.team - {viewer.email}]
        return [("me", "me"), ("team", "my team"), *reports]
    return []


def _inbox_query(viewer: Viewer, assignee: str, show: str) -> Any:
    query = select(Task, Customer).outerjoin(Customer, Customer.id == Task.customer_id)
    if show == "open":
        query = query.where(Task.status == TaskStatus.OPEN)
    elif show == "closed":
        query = query.where(Task.status != TaskStatus.OPEN)
    if assignee == "me":
        query = query.where(Task.assignee_email == viewer.email)
    elif assignee == "team":
        query = query.where(Task.assignee_email.in_(viewer.team))
    elif assignee == "unassigned":
        query = query.where(Task.assignee_email.is_(None))
    elif assignee != "all":
        query = query.where(Task.assignee_email == assignee)
    order = Task.due_at if show == "open" else func.coalesce(Task.completed_at, Task.created_at)
    query = query.order_by(order.is_(None), order if show == "open" else order.desc())
    return query.limit(500)


@router.get("/inbox")
def inbox(
    request: Request, viewer: ViewerDep, assignee: str | None = None, show: str = "open"
) -> Response:
    show = show if show in ("open", "closed", "all") else "open"
    with services_of(request).sessions() as session:
        members = team_members(session)
        choices = _assignee_choices(viewer, members)
        allowed = {value for value, _ in choices}
        if assignee not in allowed:
            assignee = "all" if viewer.is_admin else "me"
        rows = session.execute(_inbox_query(viewer, assignee, show)).all()
    names = {m.email: m.name for m in members}
    now = utcnow()
    overdue = sum(1 for t, _ in rows if t.status == TaskStatus.OPEN and t.due_at and t.due_at < now)
    return render(
        request,
        "inbox.html",
        viewer,
        rows=rows,
        names=names,
        choices=choices,
        assignee=assignee,
        show=show,
        overdue=overdue,
    )
