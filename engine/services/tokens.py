"""API tokens: issue, list, revoke and check them (shared by the API and the CLI).

A token is ``pbk_`` plus 32 random bytes, shown once when issued; the store keeps only its
SHA-256 (`ApiToken.hash_token`). Each token carries scopes (`engine.scopes`), may expire,
and can be revoked; a refused token is a `TokenRefused` saying why. These functions work
inside the caller's session, like the repository's, and take no `Services`: they need
only the store.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.orm import Session

from engine.errors import DurationError, Invalid, NotFound, TokenRefused
from engine.language.durations import parse_duration
from engine.scopes import Scope, parse_scopes
from engine.store.models import NAME_LEN, ApiToken, utcnow

TOKEN_PREFIX = "pbk_"
DEFAULT_EXPIRY = "90d"
NEVER = "never"
# How stale `ApiToken.last_used_at` may get: writing it on every request would make each
# read-only call a write transaction, and SQLite has one writer at a time.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: everything but its secret."""

    id: int
    name: str
    scopes: list[str]
    created_at: datetime
    created_by: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        """``active``, ``expired`` or ``revoked``, as of now."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= utcnow():
            return "expired"
        return "active"

    @classmethod
    def of(cls, row: ApiToken) -> TokenInfo:
        return cls(
            id=row.id,
            name=row.name,
            scopes=list(row.scopes),
            created_at=_aware(row.created_at),
            created_by=row.created_by,
            expires_at=_aware_or_none(row.expires_at),
            last_used_at=_aware_or_none(row.last_used_at),
            revoked_at=_aware_or_none(row.revoked_at),
        )


@dataclass(frozen=True)
class IssuedToken:
    """A token just issued: its record and the secret, which is never available again."""

    info: TokenInfo
    secret: str


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _aware_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _aware(value)


def expiry(text: str | None, now: datetime | None = None) -> datetime | None:
    """When a token issued now with lifetime ``text`` (``90d``, ``12h``... or ``never``)
    expires; `Invalid` for anything else."""
    if text is None or text.strip().lower() == NEVER:
        return None
    try:
        seconds = parse_duration(text)
    except DurationError as exc:
        raise Invalid(f"expiry: {exc}; or '{NEVER}'") from None
    if seconds <= 0:
        raise Invalid("expiry: must be longer than 0s")
    try:
        return (now or utcnow()) + timedelta(seconds=seconds)
    except OverflowError:
        raise Invalid(f"expiry: '{text}' is too far away; use '{NEVER}'") from None


def issue(
    session: Session,
    name: str,
    scopes: Iterable[str],
    expires_at: datetime | None,
    created_by: str | None = None,
) -> IssuedToken:
    """A new token with ``scopes`` (`Invalid` for an unknown scope or none at all)."""
    name = name.strip()
    if not name or len(name) > NAME_LEN:
        raise Invalid(f"name: 1 to {NAME_LEN} characters")
    try:
        chosen = parse_scopes(scopes)
    except ValueError as exc:
        raise Invalid(f"scopes: {exc}") from None
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        token_hash=ApiToken.hash_token(secret),
        scopes=[s.value for s in chosen],
        created_by=created_by,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return IssuedToken(TokenInfo.of(row), secret)


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token, revoked and expired ones included, oldest first."""
    return [TokenInfo.of(row) for row in session.scalars(select(ApiToken).order_by(ApiToken.id))]


def revoke(session: Session, token_id: int) -> TokenInfo:
    """Revoke a token at once; revoking it again changes nothing. `NotFound` if unknown."""
    row = session.get(ApiToken, token_id)
    if row is None:
        raise NotFound(f"no API token with id {token_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    return TokenInfo.of(row)


@dataclass(frozen=True)
class UsableToken:
    """A token `check` found usable now: what a request needs of it."""

    id: int
    name: str
    scopes: list[str]
    last_used_at: datetime | None

    @property
    def use_unnoted(self) -> bool:
        """Whether `authenticate` would note this use (the last one noted is a minute old)."""
        return self.last_used_at is None or utcnow() - self.last_used_at >= LAST_USED_RESOLUTION


# Plain columns, not an `ApiToken`: every API request runs it, and a Core row read on a
# bare connection cost a quarter of an ORM entity read through a session.
_BY_HASH = select(
    ApiToken.id,
    ApiToken.name,
    ApiToken.scopes,
    ApiToken.expires_at,
    ApiToken.revoked_at,
    ApiToken.last_used_at,
).where(ApiToken.token_hash == bindparam("token_hash"))


def authenticate(session: Session, secret: str) -> UsableToken:
    """The token if it may be used now, noting when it was used (to the minute); else
    `TokenRefused` saying whether it is unknown, expired or revoked."""
    token = check(session, secret)
    if token.use_unnoted:
        note_use(session, token.id)
    return token


def check(store: Session | Connection, secret: str) -> UsableToken:
    """`authenticate` without noting the use: only reads the store (a session's, or a
    bare connection's)."""
    row = store.execute(_BY_HASH, {"token_hash": ApiToken.hash_token(secret)}).first()
    if row is None:
        raise TokenRefused("invalid API token")
    token_id, name, scopes, expires_at, revoked_at, last_used_at = row
    if revoked_at is not None:
        raise TokenRefused(f"API token '{name}' (id {token_id}) was revoked")
    expires = _aware_or_none(expires_at)
    if expires is not None and expires <= utcnow():
        raise TokenRefused(f"API token '{name}' (id {token_id}) expired")
    return UsableToken(token_id, name, list(scopes), _aware_or_none(last_used_at))


def note_use(store: Session | Connection, token_id: int) -> None:
    """Note that the token was used now (what `authenticate` does, after a `check`)."""
    store.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


def ensure(
    session: Session, name: str, scopes: Iterable[Scope], created_by: str
) -> IssuedToken | None:
    """A usable token called ``name``: None when one exists (its secret cannot be shown
    again), else a new one, issued with the default expiry. For `playbook up --demo`."""
    for info in list_tokens(session):
        if info.name == name and info.state == "active":
            return None
    return issue(session, name, scopes, expiry(DEFAULT_EXPIRY), created_by)
