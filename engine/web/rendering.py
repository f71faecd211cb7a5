"""How the web UI turns a page into HTML: the Jinja2 environment, error pages and flashes.

Templates live in ``engine/web/templates`` and are autoescaped; every response carries
`SECURITY_HEADERS` (no scripts, no framing, no caching). A flash is a signed one-time message
carried in the query string of the redirect that follows a POST, so it needs no server state.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context

from engine.errors import BadToken
from engine.signing import Purpose, sign, verify
from engine.statuses import EnrollmentStatus, OutboxStatus, TaskStatus
from engine.store.models import Task, utcnow
from engine.web.dependencies import services_of, signing_keys
from engine.web.security import Viewer
from engine.web.words import Words, in_words

TEMPLATES = Path(__file__).resolve().parent / "templates"
SECURITY_HEADERS = {
    # Inline styles are allowed for the emails shown in the outbox (srcdoc inherits this).
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: https:; "
    "style-src 'self' 'unsafe-inline'; script-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
PAGE_SIZE = 100  # rows on one page of a list screen
ERROR_TITLES = {403: "Not yours", 404: "Not found", 409: "Conflict", 400: "Bad request"}


@pass_context
def _when(
    context: Context, value: datetime | None, fmt: str = "%Y-%m-%d %H:%M", zone: bool = True
) -> str:
    """A timestamp for people, in the viewer's zone (the page's ``zone``): `fmt`, followed by
    the zone's abbreviation unless ``zone`` is False."""
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(context.get("zone") or "UTC"))
    return local.strftime(fmt) + (f" {local.strftime('%Z')}" if zone else "")


@pass_context
def _theirs(context: Context, value: datetime | None, customer_zone: str | None) -> str:
    """The customer's wall-clock time for ``value`` ("09:00 their time", with the weekday
    when it is another day there: "Tue 09:00 their time"), shown beside the viewer's; empty
    when the customer shares the viewer's zone."""
    viewer_zone = context.get("zone") or "UTC"
    if value is None or not customer_zone or customer_zone == viewer_zone:
        return ""
    theirs = value.astimezone(ZoneInfo(customer_zone))
    same_day = theirs.date() == value.astimezone(ZoneInfo(viewer_zone)).date()
    return theirs.strftime("%H:%M" if same_day else "%a %H:%M") + " their time"


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


@pass_context
def _working_days(context: Context, value: datetime | None, now: datetime | None = None) -> str:
    """How many of the viewer's working days until ``value`` ("2 working days"), when that
    differs from the calendar days (a weekend or time off lies between); else empty."""
    viewer = context.get("viewer")
    now = now or utcnow()
    if value is None or viewer is None or value <= now:
        return ""
    calendar = viewer.calendar
    tz = ZoneInfo(calendar.timezone)
    today, due = now.astimezone(tz).date(), value.astimezone(tz).date()
    span = (due - today).days
    count = sum(1 for n in range(1, span + 1) if calendar.works_on(today + timedelta(days=n)))
    if count == span:
        return ""
    return f"{count} working day{'' if count == 1 else 's'}"


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
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(when=_when, theirs=_theirs, relative=_relative, local=_local, words=in_words)
    env.filters.update(working_days=_working_days)
    env.globals.update(is_overdue=is_overdue, due_soon=due_soon)
    env.globals.update(
        EnrollmentStatus=EnrollmentStatus, OutboxStatus=OutboxStatus, TaskStatus=TaskStatus
    )
    return env


def render(
    request: Request,
    name: str,
    viewer: Viewer | None,
    *,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """The template ``name`` as a response, with the viewer, the time and any flash."""
    context.setdefault("flash", _read_flash(request))
    html = (
        _templates()
        .get_template(name)
        .render(
            request=request,
            viewer=viewer,
            now=utcnow(),
            path=request.url.path,
            zone=viewer.zone if viewer else "UTC",
            words=Words(services_of(request).project.plans),
            api_docs=services_of(request).settings.api_docs,
            **context,
        )
    )
    return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)


def error_page(request: Request, viewer: Viewer | None, status_code: int, message: str) -> Response:
    return render(
        request,
        "error.html",
        viewer,
        status_code=status_code,
        title=ERROR_TITLES.get(status_code, "Something went wrong"),
        message=message,
    )


def bad_form(request: Request, viewer: Viewer) -> Response:
    """The answer to a form whose CSRF token does not match the session's."""
    return error_page(
        request, viewer, 403, "The form's security token is missing or stale; reload the page."
    )


def flash_to(
    request: Request,
    target: str,
    message: str,
    link: str | None = None,
    undo: list[str] | None = None,
) -> Response:
    """Redirect (303, after a POST) to ``target`` with a signed one-time message; ``undo``
    names tasks just completed, so the message offers an Undo button for them."""
    payload: dict[str, Any] = {"m": message, "l": link}
    if undo:
        payload["u"] = undo
    token = sign(payload, signing_keys(request), Purpose.FLASH)
    sep = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{sep}{urlencode({'flash': token})}", status_code=303)


def _read_flash(request: Request) -> dict[str, Any] | None:
    token = request.query_params.get("flash")
    if not token:
        return None
    try:
        payload = verify(token, signing_keys(request), Purpose.FLASH)
    except BadToken:
        return None
    link, undo = payload.get("l"), payload.get("u")
    return {
        "message": str(payload.get("m", "")),
        "link": link if isinstance(link, str) else None,
        "undo": [str(u) for u in undo] if isinstance(undo, list) else [],
    }
