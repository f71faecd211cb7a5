"""Logins, sessions, CSRF tokens and who may see which tasks, for the web UI.

- The session is the signed, expiring cookie of `engine.api.auth` (HttpOnly, SameSite=Lax).
- Every state-changing form carries a CSRF token: an HMAC of the session cookie under the
  CSRF key (`engine.signing`). It is bound to one login, and another site can neither read the
  cookie nor compute the token.
- The login form carries a token bound to a random nonce cookie (double submit), so another
  site cannot log a browser in under someone else's account (login CSRF).
- CSMs see their own tasks; managers also those of everyone who reports to them, directly or
  further down; admins see every task.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from fastapi import HTTPException, Request, status
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.api.auth import SESSION_COOKIE, member_from_cookie
from engine.signing import Keyring, Purpose
from engine.store.models import Task, TeamMember

LOGIN_COOKIE = "playbook_login"


def csrf_token(keys: Keyring, session_cookie: str) -> str:
    """The CSRF token of the forms of one login session."""
    return keys.mac(Purpose.CSRF, session_cookie)


def new_login_nonce() -> str:
    return secrets.token_urlsafe(24)


def login_token(keys: Keyring, nonce: str) -> str:
    """The hidden token of a login form, bound to the nonce cookie set with the form."""
    return keys.mac(Purpose.LOGIN, nonce)


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
    member = member_from_cookie(request)
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
    return Viewer(
        email=member.email,
        name=member.name,
        is_admin=member.is_admin,
        team=team,
        csrf=csrf_token(services.settings.signing_keys(), request.cookies.get(SESSION_COOKIE, "")),
    )
