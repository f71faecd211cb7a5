"""The web UI's routes: login, CSM inbox and tasks, enrollments, customers, outbox.

Server-rendered Jinja2 pages (autoescaped), plain CSS, no JavaScript. Every page needs a
login (else a redirect to /login); every form that changes something carries the session's
CSRF token. Who sees which tasks is decided by `security.Viewer`; enrollments, customers
and the outbox are visible to every logged-in team member (see docs/ui.md).
"""

from __future__ import annotations

import functools
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from engine.api.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    check_password,
    hash_password,
    member_from_cookie,
    session_cookie,
)
from engine.api.routes import complete_and_signal
from engine.api.services import Services
from engine.errors import BadToken
from engine.signing import sign, verify
from engine.statuses import EnrollmentStatus, OutboxStatus, TaskStatus
from engine.store import repository
from engine.store.models import (
    Customer,
    Enrollment,
    OutboxMessage,
    Task,
    TeamMember,
    normalize_email,
    utcnow,
)
from engine.web.brief import build_brief
from engine.web.security import (
    LOGIN_COOKIE,
    Viewer,
    login_token,
    new_login_nonce,
    require_viewer,
    safe_next,
    same,
)
from engine.web.timeline import customer_timeline, enrollment_views, funnels

HERE = Path(__file__).resolve().parent
STATIC = HERE / "static"
PAGE_SIZE = 100
SECURITY_HEADERS = {
    # Inline styles are allowed for the emails shown in the outbox (srcdoc inherits this).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; "
    "style-src 'self' 'unsafe-inline'; script-src 'none'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

router = APIRouter(include_in_schema=False)
ViewerDep = Annotated[Viewer, Depends(require_viewer)]
FormStr = Annotated[str, Form()]


# -- rendering -------------------------------------------------------------------------------
def _when(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M", zone: bool = True) -> str:
    """A UTC timestamp for people: `fmt`, followed by ' UTC' unless ``zone`` is False."""
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime(fmt) + (" UTC" if zone else "")


def _relative(value: datetime | None, now: datetime | None = None) -> str:
    """'in 2d 3h', '5 min ago': how far ``value`` is from now, roughly."""
    if value is None:
        return ""
    delta = value - (now or utcnow())
    seconds = abs(delta.total_seconds())
    if seconds < 60:
        return "now"
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        text = f"{days}d {hours}h" if hours and days < 7 else f"{days}d"
    elif hours:
        text = f"{hours}h {rest // 60}m" if rest >= 60 else f"{hours}h"
    else:
        text = f"{rest // 60} min"
    return f"in {text}" if delta.total_seconds() > 0 else f"{text} ago"


def _local(value: datetime | None, zone: str) -> str:
    if value is None:
        return "—"
    return value.astimezone(ZoneInfo(zone)).strftime("%a %Y-%m-%d %H:%M")


def is_overdue(task: Task, now: datetime) -> bool:
    return task.status == TaskStatus.OPEN and task.due_at is not None and task.due_at < now


def due_soon(task: Task, now: datetime) -> bool:
    return (
        task.status == TaskStatus.OPEN
        and task.due_at is not None
        and now <= task.due_at < now + timedelta(days=1)
    )


@functools.cache
def _templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, relative=_relative, local=_local)
    env.globals.update(is_overdue=is_overdue, due_soon=due_soon)
    env.globals.update(
        EnrollmentStatus=EnrollmentStatus, OutboxStatus=OutboxStatus, TaskStatus=TaskStatus
    )
    return env


def _services(request: Request) -> Services:
    return request.app.state.services


def _secret(request: Request) -> str:
    return _services(request).settings.signing_secret.get_secret_value()


def render(
    request: Request,
    name: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    context.setdefault("flash", _read_flash(request))
    html = (
        _templates()
        .get_template(name)
        .render(request=request, viewer=viewer, now=utcnow(), path=request.url.path, **context)
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def error_page(request: Request, viewer: Viewer | None, status_code: int, message: str) -> Response:
    titles = {403: "Not yours", 404: "Not found", 409: "Conflict", 400: "Bad request"}
    return render(
        request,
        "error.html",
        viewer,
        status_code=status_code,
        title=titles.get(status_code, "Something went wrong"),
        message=message,
    )


def _flash_to(request: Request, target: str, message: str, link: str | None = None) -> Response:
    """Redirect (303, after a POST) to ``target`` with a signed one-time message."""
    token = sign({"m": message, "l": link}, _secret(request), "flash")
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode({'flash': token})}", status_code=303)


def _read_flash(request: Request) -> dict[str, Any] | None:
    token = request.query_params.get("flash")
    if not token:
        return None
    try:
        payload = verify(token, _secret(request), "flash")
    except BadToken:
        return None
    link = payload.get("l")
    return {"message": str(payload.get("m", "")), "link": link if isinstance(link, str) else None}


def _bad_form(request: Request, viewer: Viewer) -> Response:
    return error_page(
        request, viewer, 403, "The form's security token is missing or stale; reload the page."
    )


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or not path.is_file():
        raise HTTPException(404, "no such file")
    return FileResponse(path, headers={"Cache-Control": "public, max-age=3600"})


# -- login -----------------------------------------------------------------------------------
@functools.cache
def _decoy_hash() -> str:
    """Checked for unknown emails, so a wrong email takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or _services(request).settings.public_base_url.startswith(
        "https://"
    )


def _login_form(
    request: Request,
    next_: str | None,
    *,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
) -> Response:
    nonce = new_login_nonce()
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        next=safe_next(next_),
        token=login_token(_secret(request), nonce),
        error=error,
        email=email,
        flash=None,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=3600,
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return response


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if member_from_cookie(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, next)


@router.post("/login")
def login(
    request: Request,
    email: FormStr = "",
    password: FormStr = "",
    token: FormStr = "",
    next: FormStr = "",
) -> Response:
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    if not nonce or not same(token, login_token(_secret(request), nonce)):
        return _login_form(
            request, next, error="The login form expired; please try again.", status_code=400
        )
    with _services(request).sessions() as session:
        member = session.get(TeamMember, normalize_email(email)) if email.strip() else None
        stored = member.password_hash if member is not None else None
    if not check_password(password, stored or _decoy_hash()) or member is None or not stored:
        return _login_form(
            request, next, error="Wrong email or password.", email=email, status_code=401
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(_secret(request), member.email),
        max_age=SESSION_SECONDS,
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, viewer: ViewerDep, csrf: FormStr = "") -> Response:
    if not same(csrf, viewer.csrf):
        return _bad_form(request, viewer)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- inbox and tasks -------------------------------------------------------------------------
@router.get("/")
def home() -> Response:
    return RedirectResponse("/inbox", status_code=303)


def _members(session: Session) -> list[TeamMember]:
    return list(session.scalars(select(TeamMember).order_by(TeamMember.name)))


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
    with _services(request).sessions() as session:
        members = _members(session)
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
    services = _services(request)
    with services.sessions() as session:
        task, code, message = _load_task(session, viewer, task_id)
        if task is None:
            return error_page(request, viewer, code, message)
        customer = repository.get_customer(session, task.customer_id or "")
        brief = None
        if task.playbook_id == "qbr" and customer is not None:
            brief = build_brief(session, customer.id, exclude_task=task.id)
        enrollment = session.get(Enrollment, task.enrollment_id or "")
        escalation_of = session.get(Task, task.escalation_of) if task.escalation_of else None
        members = _members(session)
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


@router.post("/tasks/{task_id}/complete")
async def complete_task(
    request: Request,
    task_id: str,
    viewer: ViewerDep,
    csrf: FormStr = "",
    outcome: FormStr = "",
    note: FormStr = "",
) -> Response:
    if not same(csrf, viewer.csrf):
        return _bad_form(request, viewer)
    services = _services(request)
    with services.sessions() as session:
        task, code, message = _load_task(session, viewer, task_id)
    if task is None:
        return error_page(request, viewer, code, message)
    if not outcome:
        return await _task_page(
            request, viewer, task_id, error="Choose an outcome.", status_code=422
        )
    try:
        done = await complete_and_signal(
            services, task_id, outcome, viewer.email, note.strip() or None
        )
    except HTTPException as exc:
        return await _task_page(
            request, viewer, task_id, error=str(exc.detail), status_code=exc.status_code
        )
    link = f"/customers/{quote(done.customer_id)}" if done.customer_id else None
    return _flash_to(request, "/inbox", f"Completed “{done.title}”: {outcome}.", link)


@router.post("/tasks/{task_id}/reassign")
async def reassign_task(
    request: Request, task_id: str, viewer: ViewerDep, csrf: FormStr = "", assignee: FormStr = ""
) -> Response:
    if not same(csrf, viewer.csrf):
        return _bad_form(request, viewer)
    with _services(request).sessions.begin() as session:
        task, code, message = _load_task(session, viewer, task_id)
        if task is None:
            return error_page(request, viewer, code, message)
        target = session.get(TeamMember, normalize_email(assignee)) if assignee else None
        if target is None:
            problem = "Choose a team member to hand the task to."
        elif task.status != TaskStatus.OPEN:
            problem = f"The task is {task.status}; only open tasks can be reassigned."
        else:
            # A plain UPDATE of the owner: the workflow waits on the task id, not on a person.
            task.assignee_email = target.email
            done = f"Reassigned “{task.title}” to {target.name}."
            problem = None
    if problem is not None:
        return await _task_page(request, viewer, task_id, error=problem, status_code=409)
    return _flash_to(request, "/inbox", done)


# -- enrollments and customers ---------------------------------------------------------------
@router.get("/enrollments")
def enrollments(
    request: Request,
    viewer: ViewerDep,
    playbook: str | None = None,
    step: str | None = None,
    status: str | None = None,
) -> Response:
    services = _services(request)
    query = (
        select(Enrollment, Customer)
        .outerjoin(Customer, Customer.id == Enrollment.customer_id)
        .order_by(Enrollment.updated_at.desc())
        .limit(PAGE_SIZE)
    )
    if playbook:
        query = query.where(Enrollment.playbook_id == playbook)
    if step:
        query = query.where(
            Enrollment.current_step == step, Enrollment.status == EnrollmentStatus.RUNNING
        )
    if status:
        query = query.where(Enrollment.status == status)
    with services.sessions() as session:
        rows = session.execute(query).all()
        data = funnels(session, services.project.plans)
    return render(
        request,
        "enrollments.html",
        viewer,
        funnels=data,
        rows=rows,
        playbook=playbook,
        step=step,
        status=status,
    )


@router.get("/customers")
def customers(
    request: Request, viewer: ViewerDep, q: str = "", owner: str | None = None
) -> Response:
    query = select(Customer).order_by(Customer.name).limit(500)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(or_(Customer.name.ilike(like), Customer.id.ilike(like)))
    if owner == "me":
        query = query.where(Customer.owner_email == viewer.email)
    with _services(request).sessions() as session:
        rows = list(session.scalars(query))
        ids = [c.id for c in rows]
        running = dict(
            session.execute(
                select(Enrollment.customer_id, func.count())
                .where(
                    Enrollment.customer_id.in_(ids), Enrollment.status == EnrollmentStatus.RUNNING
                )
                .group_by(Enrollment.customer_id)
            ).all()
        )
        open_tasks = dict(
            session.execute(
                select(Task.customer_id, func.count())
                .where(Task.customer_id.in_(ids), Task.status == TaskStatus.OPEN)
                .group_by(Task.customer_id)
            ).all()
        )
        names = {m.email: m.name for m in _members(session)}
    return render(
        request,
        "customers.html",
        viewer,
        customers=rows,
        running=running,
        open_tasks=open_tasks,
        names=names,
        q=q,
        owner=owner,
    )


@router.get("/customers/{customer_id:path}")
async def customer_page(request: Request, customer_id: str, viewer: ViewerDep) -> Response:
    services = _services(request)
    with services.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        if customer is None:
            return error_page(request, viewer, 404, f"There is no customer {customer_id}.")
        rows = list(
            session.scalars(
                select(Enrollment)
                .where(Enrollment.customer_id == customer_id)
                .order_by(
                    Enrollment.status != EnrollmentStatus.RUNNING, Enrollment.started_at.desc()
                )
                .limit(10)
            )
        )
        milestones = repository.get_milestones(session, customer_id)
        names = {m.email: m.name for m in _members(session)}
    views = await enrollment_views(services.client, rows)
    with services.sessions() as session:
        timeline = customer_timeline(session, customer_id, views)
    return render(
        request,
        "customer.html",
        viewer,
        customer=customer,
        views=views,
        milestones=sorted(milestones.values(), key=lambda m: m.reached_at),
        timeline=timeline,
        names=names,
    )


# -- outbox ----------------------------------------------------------------------------------
@router.get("/outbox")
def outbox(
    request: Request,
    viewer: ViewerDep,
    status: str = "",
    playbook: str = "",
    q: str = "",
    page: int = 1,
) -> Response:
    page = max(page, 1)
    query = select(OutboxMessage, Customer).outerjoin(
        Customer, Customer.id == OutboxMessage.customer_id
    )
    if status:
        query = query.where(OutboxMessage.status == status)
    if playbook:
        query = query.where(OutboxMessage.playbook_id == playbook)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(
            or_(OutboxMessage.contact_email.ilike(like), OutboxMessage.subject.ilike(like))
        )
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    with _services(request).sessions() as session:
        rows = session.execute(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
        counts = dict(
            session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
        )
        playbooks = sorted(
            p
            for p in session.scalars(select(OutboxMessage.playbook_id).distinct())
            if p is not None
        )
    statuses = [s.value for s in OutboxStatus] + sorted(
        set(counts) - {s.value for s in OutboxStatus}
    )
    return render(
        request,
        "outbox.html",
        viewer,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        counts=counts,
        statuses=statuses,
        playbooks=playbooks,
        status=status,
        playbook=playbook,
        q=q,
    )


@router.get("/outbox/{message_id}")
def outbox_message(request: Request, message_id: int, viewer: ViewerDep) -> Response:
    with _services(request).sessions() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            return error_page(request, viewer, 404, f"There is no email {message_id}.")
        customer = session.get(Customer, message.customer_id) if message.customer_id else None
    return render(request, "outbox_message.html", viewer, message=message, customer=customer)
