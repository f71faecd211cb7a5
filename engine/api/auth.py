"""Credentials: API tokens (stored hashed) for /api, password logins for the web UI.

- API tokens are random, shown once at creation, and stored as SHA-256 hashes; requests
  send them as ``Authorization: Bearer <token>``.
- UI logins check a scrypt hash (`hash_password`, `check_password`); their sessions are
  server-side (`engine.store.logins`, `engine.web.security`).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.store.models import ApiToken, utcnow

# How stale `ApiToken.last_used_at` may get: writing it on every request would make each
# read-only call a write transaction, and SQLite has one writer at a time.
LAST_USED_RESOLUTION = timedelta(minutes=1)
_bearer = HTTPBearer(auto_error=False, description="An API token: `playbook token create`.")


def create_api_token(session: Session, name: str) -> str:
    """A new token; only its hash is stored, so this is the one time it can be seen."""
    token = "pbk_" + secrets.token_urlsafe(32)
    session.add(ApiToken(name=name, token_hash=ApiToken.hash_token(token)))
    return token


def check_api_token(session: Session, token: str) -> ApiToken | None:
    """The token's row if it is valid; notes when it was used, to the minute."""
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == ApiToken.hash_token(token))
    ).first()
    if row is not None:
        now = utcnow()
        last = row.last_used_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if last is None or now - last >= LAST_USED_RESOLUTION:
            row.last_used_at = now
    return row


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2**14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(password: str, stored: str | None) -> bool:
    if not stored or not stored.startswith("scrypt$"):
        return False
    _, salt, digest = stored.split("$")
    given = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2**14, r=8, p=1)
    return hmac.compare_digest(given.hex(), digest)


@dataclass
class Caller:
    """Who is calling: an API token or a logged-in team member."""

    name: str
    email: str | None = None
    is_admin: bool = True


def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Dependency for /api routes: a valid bearer token, else 401."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    services = request.app.state.services
    with services.sessions.begin() as session:
        row = check_api_token(session, credentials.credentials)
        if row is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid API token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Caller(name=row.name)
