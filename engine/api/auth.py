"""Credentials: API tokens (stored hashed) for /api, password logins for the web UI.

- API tokens are random, shown once at creation, and stored as SHA-256 hashes; requests
  send them as ``Authorization: Bearer <token>``. Each carries scopes, and each route
  names the one it needs (`Requires`); `engine.services.tokens` issues, lists and revokes.
- UI logins check a scrypt hash (`hash_password`, `check_password`); their sessions are
  server-side (`engine.store.logins`, `engine.web.security`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import TokenRefused
from engine.scopes import Scope, grants
from engine.services import tokens
from engine.services.tokens import DEFAULT_EXPIRY, UsableToken
from engine.store.db import engine_of, is_sqlite

log = logging.getLogger(__name__)

_bearer = HTTPBearer(auto_error=False, description="An API token: `playbook token create`.")


def create_api_token(
    session: Session, name: str, scopes: Iterable[str], expires: str | None = DEFAULT_EXPIRY
) -> str:
    """A new token with ``scopes``; only its hash is stored, so this is the one time it can be
    seen. (`engine.services.tokens.issue` also returns its record.)"""
    return tokens.issue(session, name, scopes, tokens.expiry(expires)).secret


def check_api_token(session: Session, token: str) -> UsableToken | None:
    """The token if it may be used now (see `engine.services.tokens.authenticate`)."""
    try:
        return tokens.authenticate(session, token)
    except TokenRefused:
        return None


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
    """Who is calling: an API token (its name, id and scopes) or a logged-in team member."""

    name: str
    email: str | None = None
    is_admin: bool = False
    token_id: int | None = None
    scopes: frozenset[str] = frozenset()

    @property
    def actor(self) -> str:
        """How the caller is recorded as the one who did something (a task's
        `completed_by`, a cancellation's `by`): ``api:<token name>`` for a token."""
        return self.email or f"api:{self.name}"


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    """Dependency for /api routes: a usable bearer token, else 401 saying why.

    The limits middleware (`engine.api.limits`) checks the token before the body is read and
    leaves the caller on ``request.state``; it is taken from there when present."""
    checked = getattr(request.state, "api_caller", None)
    if isinstance(checked, Caller):
        return checked
    return await caller_for(request, credentials)


async def caller_for(
    request: Request, credentials: HTTPAuthorizationCredentials | None, *, note_later: bool = False
) -> Caller:
    """The caller a bearer token names, else 401 saying why (see `authenticate`).

    Under SQLite the token is read right here, on the event loop, on a bare connection: a
    read in WAL mode never waits for the writer, and a hop to a thread and back cost more
    than the read (and, on a busy process, waited for the GIL and the loop again). Noting
    the use, once a minute per token, is a write, so that is done in a thread, where a
    wait for SQLite's writer lock holds up no other request; so is any lookup on another
    database.

    With ``note_later`` a use to note under SQLite is left on ``request.state`` for
    `note_token_use`, which the limits middleware calls once the response is sent: the
    request does not wait for a bookkeeping write, nor for the writer lock it needs."""
    services = request.app.state.services
    if not is_sqlite(services.sessions):
        return await run_in_threadpool(authenticate, request, credentials)
    secret = _bearer_secret(credentials)
    try:
        with engine_of(services.sessions).connect() as connection:
            token = tokens.check(connection, secret)
    except TokenRefused as exc:
        raise _refused(exc) from None
    if token.use_unnoted:
        if note_later:
            request.state.unnoted_token_id = token.id
        else:
            await run_in_threadpool(_note_use, services.sessions, token.id)
    return _caller(token)


async def note_token_use(request: Request) -> None:
    """Note the use `caller_for` left for later, if it left one.

    A store too busy to take the write is logged, not raised: the use is noted by a later
    request (the token's `last_used_at` is still over a minute old then), and the request
    it came from has had its answer."""
    token_id = getattr(request.state, "unnoted_token_id", None)
    if token_id is None:
        return
    del request.state.unnoted_token_id
    try:
        await run_in_threadpool(_note_use, request.app.state.services.sessions, token_id)
    except OperationalError as exc:
        log.warning(
            "API token %s: its use was not noted (%s); a later request notes it", token_id, exc.orig
        )


def _note_use(sessions: sessionmaker[Session], token_id: int) -> None:
    with sessions.begin() as session:
        tokens.note_use(session, token_id)


def authenticate(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Caller:
    """The caller a bearer token names, noting the use, else 401 saying why (blocking:
    reads and may write the store)."""
    secret = _bearer_secret(credentials)
    try:
        with request.app.state.services.sessions.begin() as session:
            return _caller(tokens.authenticate(session, secret))
    except TokenRefused as exc:
        raise _refused(exc) from None


def _bearer_secret(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "an API token is required (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credentials.credentials


def _caller(token: UsableToken) -> Caller:
    return Caller(
        name=token.name,
        is_admin=grants(token.scopes, Scope.ADMIN),
        token_id=token.id,
        scopes=frozenset(token.scopes),
    )


def _refused(exc: TokenRefused) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
    )


class Requires:
    """Dependency of an /api route: a token holding one of ``scopes`` (``admin`` holds all),
    else 403 naming the scope it lacks. Every /api route declares one."""

    def __init__(self, *scopes: Scope) -> None:
        assert scopes, "name at least one scope"
        self.scopes = scopes

    # Async, as are `require_token` and the routes' `services`: FastAPI runs a plain
    # function dependency in its thread pool, and on a busy process each such hop waited
    # for the event loop and the GIL again (bench/RESULTS.md, "The event path").
    async def __call__(self, caller: Annotated[Caller, Depends(require_token)]) -> Caller:
        if any(grants(caller.scopes, scope) for scope in self.scopes):
            return caller
        needed = " or ".join(f"'{scope}'" for scope in self.scopes)
        held = ", ".join(sorted(caller.scopes)) or "none"
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"this API token lacks the {needed} scope (it has: {held})",
        )
