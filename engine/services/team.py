"""Team members: create or update, disable, enable, remove, and unlock their logins.

Every change that takes something away from a member ends their web sessions at once
(`engine.store.logins.end_member_sessions`): a new password, losing the admin flag or a
role, being disabled or removed. A session copied before the change is then worth nothing.
What a member may see is read from the store on every request, so a promotion needs no
new login and ends nothing.

Removing a member hands their open tasks back to the unassigned queue, where admins see
them and reassign them; done tasks keep their history. Disabling keeps tasks assigned,
since it is undone by enabling (a leave, a suspended account), and the member's manager
and admins still see and reassign them.

These need only the store, so they take its sessions rather than a `Services`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import Invalid, NotFound
from engine.statuses import TaskStatus
from engine.store.logins import account_key, clear_failures, end_member_sessions
from engine.store.models import LoginThrottle, Task, TeamMember, normalize_email, utcnow


def require_member(session: Session, email: str) -> TeamMember:
    """The team member with this address, or `Invalid` naming it: tasks and customers go
    only to people on the team (a stranger would get work nobody sees)."""
    member = session.get(TeamMember, normalize_email(email))
    if member is None:
        raise Invalid(f"'{email}' is not a team member; add them with `playbook team` first")
    return member


@dataclass(frozen=True)
class MemberData:
    """What a roster sync sets on a member; `password_hash` None keeps the password."""

    name: str
    manager: str | None
    roles: list[str]
    is_admin: bool
    password_hash: str | None = None


def _demoted(member: TeamMember, data: MemberData) -> bool:
    return (member.is_admin and not data.is_admin) or bool(set(member.roles) - set(data.roles))


def put_member(sessions: sessionmaker[Session], email: str, data: MemberData) -> int:
    """Create or update a member; returns how many of their sessions this ended (a new
    password or a demotion ends them all)."""
    with sessions.begin() as session:
        member = session.get(TeamMember, normalize_email(email))
        ends = False
        if member is None:
            member = TeamMember(email=email)
            session.add(member)
        else:
            ends = data.password_hash is not None or _demoted(member, data)
        member.name = data.name
        member.manager_email = data.manager
        member.roles = list(data.roles)
        member.is_admin = data.is_admin
        if data.password_hash is not None:
            member.password_hash = data.password_hash
        return end_member_sessions(session, member.email, utcnow()) if ends else 0


def _member(session: Session, email: str) -> TeamMember:
    member = session.get(TeamMember, normalize_email(email))
    if member is None:
        raise NotFound(f"no team member '{email}'")
    return member


def disable_member(sessions: sessionmaker[Session], email: str) -> None:
    """Refuse the member's logins and end their sessions, until `enable_member`."""
    with sessions.begin() as session:
        member = _member(session, email)
        now = utcnow()
        member.disabled_at = member.disabled_at or now
        end_member_sessions(session, member.email, now)


def enable_member(sessions: sessionmaker[Session], email: str) -> None:
    """Let a disabled member log in again (their old sessions stay ended)."""
    with sessions.begin() as session:
        _member(session, email).disabled_at = None


def remove_member(sessions: sessionmaker[Session], email: str) -> int:
    """Delete the member, end their sessions and unassign their open tasks; returns how
    many tasks went back to the unassigned queue."""
    with sessions.begin() as session:
        member = _member(session, email)
        end_member_sessions(session, member.email, utcnow())
        result = session.execute(
            update(Task)
            .where(Task.assignee_email == member.email, Task.status == TaskStatus.OPEN)
            .values(assignee_email=None)
        )
        session.delete(member)
        return int(getattr(result, "rowcount", 0) or 0)


def unlock_member(sessions: sessionmaker[Session], email: str) -> bool:
    """End a login lockout or backoff of the account ``email`` before it runs out (someone
    failed on purpose with their email); returns whether there was one. Known or not, as
    failed logins are counted for any email typed."""
    key = account_key(email)
    with sessions.begin() as session:
        counted = session.get(LoginThrottle, key) is not None
        clear_failures(session, key)
        return counted


@dataclass(frozen=True)
class CalendarData:
    """A member's working calendar; None leaves a part as it is."""

    timezone: str | None = None
    working_days: list[int] | None = None
    hours: tuple[int, int] | None = None  # minutes since midnight [start, end)
    time_off: list[tuple[date, date]] | None = None


def get_member(sessions: sessionmaker[Session], email: str) -> TeamMember:
    """The member (detached), or `NotFound`."""
    with sessions() as session:
        member = _member(session, email)
        session.expunge(member)
        return member


def set_calendar(sessions: sessionmaker[Session], email: str, data: CalendarData) -> TeamMember:
    """Set when a member works: due dates and escalations of their tasks follow it."""
    if data.timezone is not None:
        try:
            ZoneInfo(data.timezone)
        except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: 'Europe' is a folder
            raise Invalid(f"'{data.timezone}' is not an IANA time zone") from None
    if data.working_days is not None and not set(data.working_days) <= set(range(7)):
        raise Invalid("working days are weekday numbers 0 (Monday) to 6 (Sunday)")
    if data.hours is not None and not 0 <= data.hours[0] < data.hours[1] <= 24 * 60:
        raise Invalid("working hours must start before they end, within the day")
    for first, last in data.time_off or []:
        if last < first:
            raise Invalid(f"time off {first} to {last} ends before it starts")
    with sessions.begin() as session:
        member = _member(session, email)
        if data.timezone is not None:
            member.timezone = data.timezone
        if data.working_days is not None:
            member.working_days = sorted(set(data.working_days))
        if data.hours is not None:
            member.work_start_minute, member.work_end_minute = data.hours
        if data.time_off is not None:
            member.time_off = [[a.isoformat(), b.isoformat()] for a, b in sorted(data.time_off)]
        session.flush()
        session.expunge(member)
        return member
