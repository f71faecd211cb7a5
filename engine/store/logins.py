"""The store side of web UI logins: server-side sessions, failed-login counters and used
login nonces.

Sessions live in the database rather than only in a signed cookie so that they can end
before they expire: on logout, a password change, a demotion, or when a member is disabled
or removed (`end_member_sessions`). Failed logins are counted per account and per client
address in the database too, so that every API process and a restart see the same counts.

No HTTP here: the login page (`engine.web.pages.login`) and the session check
(`engine.web.security`) pass the current time in, which keeps the rules testable with any
clock.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, delete, or_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.store.models import (
    LoginThrottle,
    TeamMember,
    UsedLoginNonce,
    WebSession,
    normalize_email,
)

# The longest `WebSession.last_seen_at` may lag: writing it on every page view would make
# each read a write transaction (SQLite has one writer at a time). The idle timeout is
# therefore exact to within this, or half the timeout when that is shorter.
TOUCH_RESOLUTION = timedelta(minutes=1)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


# -- sessions ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionLimits:
    """How long a session lasts: `idle` since its last request, `absolute` since its login."""

    idle: timedelta
    absolute: timedelta


def open_session(session: Session, email: str, now: datetime) -> str:
    """A new session for ``email``; returns the secret its cookie carries (stored hashed)."""
    secret = secrets.token_urlsafe(32)
    session.add(
        WebSession(id=_digest(secret), member_email=email, created_at=now, last_seen_at=now)
    )
    return secret


def session_member(
    session: Session, secret: str, limits: SessionLimits, now: datetime
) -> TeamMember | None:
    """The member a session cookie logs in, or None when the session has ended: unknown,
    revoked, idle or too old, or its member disabled or removed. Notes the use."""
    row = session.get(WebSession, _digest(secret)) if secret else None
    if row is None or row.revoked_at is not None:
        return None
    if now - row.created_at >= limits.absolute or now - row.last_seen_at >= limits.idle:
        return None
    member = session.get(TeamMember, row.member_email)
    if member is None or member.disabled_at is not None:
        return None
    if now - row.last_seen_at >= min(TOUCH_RESOLUTION, limits.idle / 2):
        row.last_seen_at = now
    return member


def end_session(session: Session, secret: str, now: datetime) -> None:
    """End one session (logout)."""
    session.execute(
        update(WebSession)
        .where(WebSession.id == _digest(secret), WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end_member_sessions(session: Session, email: str, now: datetime) -> int:
    """End every session of ``email``; returns how many were open."""
    result = session.execute(
        update(WebSession)
        .where(
            WebSession.member_email == normalize_email(email),
            WebSession.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


# -- login nonces ------------------------------------------------------------------------------
def use_login_nonce(session: Session, nonce: str, expires_at: datetime) -> bool:
    """Mark a login form's nonce used; False if it had been used already."""
    try:
        with session.begin_nested():
            session.add(UsedLoginNonce(nonce_hash=_digest(nonce), expires_at=expires_at))
    except IntegrityError:
        return False
    return True


# -- throttling --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThrottlePolicy:
    """Backoff, then lockout, after failed logins of one key (an account or an address).

    After `backoff_after` failures each next try waits 1 s after the last failure, doubling
    with every further failure up to `backoff_max`. At `lockout_failures` the key is locked
    for `lockout`. Failures are forgotten after `lockout` without a new one, and when a
    lockout ends.
    """

    backoff_after: int
    backoff_max: timedelta
    lockout_failures: int
    lockout: timedelta

    def backoff(self, failures: int) -> timedelta:
        """How long after the last of ``failures`` failures the next try must wait."""
        if failures <= self.backoff_after:
            return timedelta(0)
        doublings = min(failures - self.backoff_after - 1, 30)
        return min(timedelta(seconds=2**doublings), self.backoff_max)


def account_key(email: str) -> str:
    return "account:" + normalize_email(email)[:320]


def client_key(address: str) -> str:
    return "client:" + address[:64]


def login_wait(
    session: Session, checks: Sequence[tuple[str, ThrottlePolicy]], now: datetime
) -> timedelta:
    """How long until a login may be tried for every key in ``checks``; zero means now."""
    longest = timedelta(0)
    for key, policy in checks:
        row = session.get(LoginThrottle, key)
        if row is None:
            continue
        if row.locked_until is not None:
            longest = max(longest, row.locked_until - now)
        elif now - row.last_failure_at < policy.lockout:
            longest = max(longest, row.last_failure_at + policy.backoff(row.failures) - now)
    return longest


def record_failure(session: Session, key: str, policy: ThrottlePolicy, now: datetime) -> bool:
    """Count a failed login against ``key``; True when this failure locks it.

    The count is kept with atomic updates, so that logins failing in parallel each count.
    """
    if session.get(LoginThrottle, key) is None:
        try:
            with session.begin_nested():
                session.add(LoginThrottle(key=key, failures=0, last_failure_at=now))
        except IntegrityError:
            pass  # another request created it first
    session.execute(  # start over after a quiet spell or a lockout that has ended
        update(LoginThrottle)
        .where(
            LoginThrottle.key == key,
            or_(
                LoginThrottle.locked_until <= now,
                and_(
                    LoginThrottle.locked_until.is_(None),
                    LoginThrottle.last_failure_at <= now - policy.lockout,
                ),
            ),
        )
        .values(failures=0, locked_until=None)
    )
    session.execute(
        update(LoginThrottle)
        .where(LoginThrottle.key == key)
        .values(failures=LoginThrottle.failures + 1, last_failure_at=now)
    )
    locked = session.execute(
        update(LoginThrottle)
        .where(
            LoginThrottle.key == key,
            LoginThrottle.locked_until.is_(None),
            LoginThrottle.failures >= policy.lockout_failures,
        )
        .values(locked_until=now + policy.lockout)
    )
    session.expire_all()
    return bool(getattr(locked, "rowcount", 0))


def clear_failures(session: Session, key: str) -> None:
    """Forget the failures of ``key`` (a successful login of that account)."""
    session.execute(delete(LoginThrottle).where(LoginThrottle.key == key))


def prune(session: Session, limits: SessionLimits, lockout: timedelta, now: datetime) -> None:
    """Delete what can no longer matter: sessions past their absolute lifetime, nonces
    whose forms have expired, counters that are neither locked nor recent."""
    session.execute(delete(WebSession).where(WebSession.created_at <= now - limits.absolute))
    session.execute(delete(UsedLoginNonce).where(UsedLoginNonce.expires_at <= now))
    session.execute(
        delete(LoginThrottle).where(
            or_(LoginThrottle.locked_until.is_(None), LoginThrottle.locked_until <= now),
            LoginThrottle.last_failure_at <= now - lockout,
        )
    )
