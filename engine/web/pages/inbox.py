"""The CSM inbox: the tasks a viewer may see, filtered, searched, sorted, and saved views.

Open tasks can be checked and completed together with one outcome (`engine.web.pages.task`).
Filters are plain query parameters (whose, show, playbook, priority, segment, due, q, sort),
so a view is its query string: a saved view (`SavedView`) stores it under a name, per team
member, and shows as a link above the list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import case, delete, func, or_, select

from engine.statuses import TaskStatus
from engine.store.models import Customer, SavedView, Task, TaskPriority, TeamMember, utcnow
from engine.web.dependencies import FormStr, ViewerDep, services_of
from engine.web.rendering import bad_form, flash_to, render
from engine.web.security import Viewer, same, team_members

router = APIRouter()

DUE_CHOICES = [("", "any time"), ("overdue", "overdue"), ("today", "today"), ("week", "this week")]
SORT_CHOICES = [
    ("due", "due date, soonest first"),
    ("-due", "due date, latest first"),
    ("priority", "priority, then due date"),
    ("created", "newest first"),
]
PRIORITY_RANK = {p.value: rank for rank, p in enumerate(reversed(list(TaskPriority)))}
MAX_VIEWS = 20  # saved views per team member


@router.get("/")
def home() -> Response:
    return RedirectResponse("/inbox", status_code=303)


@dataclass(frozen=True)
class InboxFilter:
    """What the inbox shows: one value per query parameter, already checked."""

    assignee: str
    show: str = "open"
    playbook: str = ""
    priority: str = ""
    segment: str = ""
    due: str = ""
    q: str = ""
    sort: str = "due"

    def query_string(self) -> str:
        """The filter as the inbox's query string (defaults left out), e.g. for a view."""
        defaults = InboxFilter(assignee="")
        values = {
            name: getattr(self, name)
            for name in ("assignee", "show", "playbook", "priority", "segment", "due", "q", "sort")
            if getattr(self, name) != getattr(defaults, name)
        }
        return urlencode(values)


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


def due_window(due: str, now: datetime, zone: str) -> tuple[datetime | None, datetime | None]:
    """The due-date range of "overdue", "today" or "this week", in the viewer's zone: today
    ends at their midnight, the week at the midnight that ends their Sunday."""
    local = now.astimezone(ZoneInfo(zone))
    midnight = datetime.combine(local.date(), time(), tzinfo=local.tzinfo)
    if due == "overdue":
        return None, now
    if due == "today":
        return midnight, midnight + timedelta(days=1)
    if due == "week":
        return midnight, midnight + timedelta(days=7 - local.weekday())
    return None, None


def _inbox_query(viewer: Viewer, f: InboxFilter, now: datetime) -> Any:
    query = select(Task, Customer).outerjoin(Customer, Customer.id == Task.customer_id)
    if f.show == "open":  # snoozed tasks stay out of sight until their snooze ends
        query = query.where(
            Task.status == TaskStatus.OPEN,
            or_(Task.snoozed_until.is_(None), Task.snoozed_until <= now),
        )
    elif f.show == "snoozed":
        query = query.where(Task.status == TaskStatus.OPEN, Task.snoozed_until > now)
    elif f.show == "closed":
        query = query.where(Task.status != TaskStatus.OPEN)
    if f.assignee == "me":
        query = query.where(Task.assignee_email == viewer.email)
    elif f.assignee == "team":
        query = query.where(Task.assignee_email.in_(viewer.team))
    elif f.assignee == "unassigned":
        query = query.where(Task.assignee_email.is_(None))
    elif f.assignee != "all":
        query = query.where(Task.assignee_email == f.assignee)
    if f.playbook:
        query = query.where(Task.playbook_id == f.playbook)
    if f.priority:
        query = query.where(Task.priority == f.priority)
    if f.segment:
        query = query.where(Customer.segment == f.segment)
    start, end = due_window(f.due, now, viewer.zone)
    if end is not None:
        query = query.where(Task.due_at < end)
    if start is not None:
        query = query.where(Task.due_at >= start)
    if f.q:
        like = f"%{f.q}%"
        query = query.where(
            or_(Task.title.ilike(like), Customer.name.ilike(like), Task.customer_id.ilike(like))
        )
    if f.show != "open" and f.sort == "due":
        closed = func.coalesce(Task.completed_at, Task.created_at)
        return query.order_by(closed.desc()).limit(500)
    rank = case(PRIORITY_RANK, value=Task.priority, else_=len(PRIORITY_RANK))
    orders: dict[str, list[Any]] = {
        "due": [Task.due_at.is_(None), Task.due_at],
        "-due": [Task.due_at.is_(None), Task.due_at.desc()],
        "priority": [rank, Task.due_at.is_(None), Task.due_at],
        "created": [Task.created_at.desc()],
    }
    return query.order_by(*orders[f.sort], Task.id).limit(500)


def _choice(value: str, allowed: set[str]) -> str:
    return value if value in allowed else ""


@router.get("/inbox")
def inbox(
    request: Request,
    viewer: ViewerDep,
    assignee: str | None = None,
    show: str = "open",
    playbook: str = "",
    priority: str = "",
    segment: str = "",
    due: str = "",
    q: str = "",
    sort: str = "due",
) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        members = team_members(session)
        choices = _assignee_choices(viewer, members)
        allowed = {value for value, _ in choices}
        segments = sorted(
            s for s in session.scalars(select(Customer.segment).distinct()) if s is not None
        )
        f = InboxFilter(
            assignee=assignee if assignee in allowed else ("all" if viewer.is_admin else "me"),
            show=show if show in ("open", "snoozed", "closed", "all") else "open",
            playbook=_choice(playbook, set(services.project.plans)),
            priority=_choice(priority, {p.value for p in TaskPriority}),
            segment=_choice(segment, set(segments)),
            due=_choice(due, {value for value, _ in DUE_CHOICES}),
            q=q.strip()[:200],
            sort=sort if sort in {value for value, _ in SORT_CHOICES} else "due",
        )
        now = utcnow()
        rows = session.execute(_inbox_query(viewer, f, now)).all()
        views = list(
            session.scalars(
                select(SavedView)
                .where(SavedView.owner_email == viewer.email)
                .order_by(SavedView.name)
            )
        )
    names = {m.email: m.name for m in members}
    # The bulk completion's outcomes: every outcome an open task in the list offers.
    outcomes = list(
        dict.fromkeys(
            o for t, _ in rows if t.status == TaskStatus.OPEN for o in (t.outcomes or ["done"])
        )
    )
    overdue = sum(1 for t, _ in rows if t.status == TaskStatus.OPEN and t.due_at and t.due_at < now)
    return render(
        request,
        "inbox.html",
        viewer,
        rows=rows,
        names=names,
        choices=choices,
        f=f,
        assignee=f.assignee,
        show=f.show,
        overdue=overdue,
        playbooks=sorted(services.project.plans.values(), key=lambda p: p.name),
        priorities=[p.value for p in reversed(list(TaskPriority))],
        segments=segments,
        due_choices=DUE_CHOICES,
        sort_choices=SORT_CHOICES,
        views=views,
        current_query=f.query_string(),
        bulk_outcomes=outcomes,
    )


@router.post("/inbox/views")
def save_view(
    request: Request, viewer: ViewerDep, csrf: FormStr = "", name: FormStr = "", query: FormStr = ""
) -> Response:
    """Save the inbox's current filter under a name (the same name replaces it)."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    name, query = " ".join(name.split())[:80], query.lstrip("?")[:1000]
    if not name:
        return flash_to(request, "/inbox?" + query, "Give the view a name to save it.")
    with services_of(request).sessions.begin() as session:
        existing = session.scalar(
            select(SavedView).where(SavedView.owner_email == viewer.email, SavedView.name == name)
        )
        if existing is not None:
            existing.query = query
        else:
            count = session.scalar(
                select(func.count()).where(SavedView.owner_email == viewer.email)
            )
            if (count or 0) >= MAX_VIEWS:
                return flash_to(request, "/inbox?" + query, f"At most {MAX_VIEWS} saved views.")
            session.add(SavedView(owner_email=viewer.email, name=name, query=query))
    return flash_to(request, "/inbox?" + query, f"Saved the view “{name}”.")


@router.post("/inbox/views/{view_id}/delete")
def delete_view(request: Request, view_id: int, viewer: ViewerDep, csrf: FormStr = "") -> Response:
    """Forget one of the viewer's saved views (another member's is left alone)."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    with services_of(request).sessions.begin() as session:
        session.execute(
            delete(SavedView).where(SavedView.id == view_id, SavedView.owner_email == viewer.email)
        )
    return flash_to(request, "/inbox", "Removed the saved view.")
