"""Logins, sessions, CSRF tokens and who may see which tasks, for the web UI.

- A session is a row of `web_sessions` (`engine.store.logins`); the cookie (HttpOnly,
  SameSite=Lax) carries a random secret whose hash names the row. Every request checks the
  row, so a session ends at once on logout, a password change, a demotion, or when its
  member is disabled or removed; and after `SESSION_IDLE_MINUTES` without a request or
  `SESSION_MAX_HOURS` after the login, whichever comes first.
- Every state-changing form carries a CSRF token: an HMAC of the session cookie under the
  CSRF key (`engine.signing`). It is bound to one login, and another site can neither read the
  cookie nor compute the token.
- The login form carries a signed token bound to a random nonce cookie (double submit), so
  another site cannot log a browser in under someone else's account (login CSRF). The
  token expires after `LOGIN_FORM_MINUTES`, and the nonce is used up by the first post.
- CSMs see their own tasks; managers also those of everyone who reports to them, directly or
  further down; admins see every task.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import BadToken
from engine.language.workdays import WorkCalendar, parse_time_off
from engine.settings import Settings
from engine.signing import Keyring, Purpose, sign, verify
from engine.store import logins
from engine.store.models import Task, TeamMember, check_timezone, utcnow

SESSION_COOKIE = "playbook_session"
LOGIN_COOKIE = "playbook_login"
ZONE_COOKIE = "playbook_tz"  # the browser's IANA time zone, set by /static/zone.js


def csrf_token(keys: Keyring, session_cookie: str) -> str:
    """The CSRF token of the forms of one login session."""
    return keys.mac(Purpose.CSRF, session_cookie)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_token(keys: Keyring, nonce: str, expires_at: datetime) -> str:
    """The hidden token of a login form, bound to the nonce cookie set with the form."""
    return sign(
        {"n": keys.mac(Purpose.LOGIN, nonce), "exp": int(expires_at.timestamp())},
        keys,
        Purpose.LOGIN,
    )


def login_token_expiry(keys: Keyring, token: str, nonce: str, now: datetime) -> datetime | None:
    """When the form of a valid, unexpired ``token`` for ``nonce`` expires; else None."""
    try:
        payload = verify(token, keys, Purpose.LOGIN)
    except BadToken:
        return None
    expires = payload.get("exp")
    if (
        not nonce
        or not isinstance(expires, int)
        or not keys.check_mac(Purpose.LOGIN, nonce, payload.get("n"))
    ):
        return None
    expires_at = datetime.fromtimestamp(expires, UTC)
    return expires_at if expires_at > now else None


def session_limits(settings: Settings) -> logins.SessionLimits:
    return logins.SessionLimits(
        idle=timedelta(minutes=settings.session_idle_minutes),
        absolute=timedelta(hours=settings.session_max_hours),
    )


def throttle_policies(settings: Settings) -> tuple[logins.ThrottlePolicy, logins.ThrottlePolicy]:
    """The backoff and lockout of failed logins: per account, per client address."""
    account = logins.ThrottlePolicy(
        backoff_after=settings.login_backoff_after,
        backoff_max=timedelta(seconds=settings.login_backoff_max_seconds),
        lockout_failures=settings.login_lockout_failures,
        lockout=timedelta(minutes=settings.login_lockout_minutes),
    )
    client = replace(
        account,
        backoff_after=settings.login_client_backoff_after,
        lockout_failures=settings.login_client_lockout_failures,
    )
    return account, client


def client_address(request: Request) -> str:
    """The address of the client, as the server sees it: behind a reverse proxy, run
    uvicorn with ``--proxy-headers --forwarded-allow-ips=<the proxy>`` so this is the
    browser's and not the proxy's."""
    return request.client.host if request.client else "unknown"


def current_member(request: Request) -> TeamMember | None:
    """The member the request's session cookie logs in, or None (no session, or it ended)."""
    cookie = request.cookies.get(SESSION_COOKIE)
    if not cookie:
        return None
    services = request.app.state.services
    with services.sessions.begin() as session:
        return logins.session_member(session, cookie, session_limits(services.settings), utcnow())


def same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given), expected)


def safe_next(target: str | None) -> str:
    """A local path to go to after logging in; anything else (other hosts) means the inbox."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/inbox"


def team_of(session: Session, email: str) -> frozenset[str]:
    """``email`` and everyone who reports to them, directly or through other managers."""
    managers: dict[str, list[str]] = {}
    for member, manager in session.execute(select(TeamMember.email, TeamMember.manager_email)):
        if manager:
            managers.setdefault(manager, []).append(member)
    team, todo = {email}, [email]
    while todo:
        for report in managers.get(todo.pop(), []):
            if report not in team:
                team.add(report)
                todo.append(report)
    return frozenset(team)


def team_members(session: Session) -> list[TeamMember]:
    """Every team member, by name: for assignee choices and showing names for emails."""
    return list(session.scalars(select(TeamMember).order_by(TeamMember.name)))


@dataclass(frozen=True)
class Viewer:
    """The logged-in team member and what they may see."""

    email: str
    name: str
    is_admin: bool
    team: frozenset[str]
    csrf: str
    zone: str = "UTC"  # the IANA zone the viewer's times are shown in (`viewer_zone`)
    # The viewer's working week, in ``zone``: "due in" counts its working days.
    calendar: WorkCalendar = field(default_factory=WorkCalendar)

    @property
    def is_manager(self) -> bool:
        return len(self.team) > 1

    def can_see_task(self, task: Task) -> bool:
        return self.is_admin or task.assignee_email in self.team

    def check_csrf(self, given: str | None) -> None:
        """Refuse a state-changing request whose form does not carry this session's token."""
        if not same(given, self.csrf):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                "the form's security token is missing or stale; reload the page and try again",
            )


def require_viewer(request: Request) -> Viewer:
    """Dependency of every page: the logged-in member, else a redirect to the login page."""
    member = current_member(request)
    if member is None:
        target = request.url.path
        if request.url.query:
            target += "?" + request.url.query
        if request.method != "GET":
            target = "/inbox"
        raise HTTPException(
            status.HTTP_303_SEE_OTHER,
            "log in first",
            headers={"Location": "/login?" + urlencode({"next": target})},
        )
    services = request.app.state.services
    with services.sessions() as session:
        team = team_of(session, member.email)
    zone = viewer_zone(member, request.cookies.get(ZONE_COOKIE))
    return Viewer(
        email=member.email,
        name=member.name,
        is_admin=member.is_admin,
        team=team,
        csrf=csrf_token(services.settings.signing_keys(), request.cookies.get(SESSION_COOKIE, "")),
        zone=zone,
        calendar=WorkCalendar(
            timezone=zone,
            days=tuple(member.working_days if member.working_days is not None else range(5)),
            start_minute=member.work_start_minute,
            end_minute=member.work_end_minute,
            time_off=parse_time_off(member.time_off or []),
        ),
    )


def viewer_zone(member: TeamMember, browser_zone: str | None) -> str:
    """The zone a member's times are shown in: their own time zone if the team roster sets
    one other than the default UTC, else the browser's (`/static/zone.js` puts it in a
    cookie), else UTC."""
    # `timezone` arrives with the team's working calendars (issue 18); until then, and for
    # members left at the default, the browser knows better.
    roster_zone = getattr(member, "timezone", None)
    for candidate in (None if roster_zone == "UTC" else roster_zone, browser_zone):
        if isinstance(candidate, str) and candidate:
            try:
                return check_timezone(candidate)
            except ValueError:
                continue
    return "UTC"
