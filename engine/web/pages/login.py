"""Logging in and out: the login form (single-use, expiring nonce), throttling of failed
logins per account and per client address, and the server-side session.

A post of the login form, in order: its nonce must be fresh and unused (else 400, and it
is used up either way); neither the account nor the client address may be in backoff or
locked out (else 429, without looking at the password, so the right password is refused
too); then the password. A failure counts against both keys and is logged with the email
and the address (never the password); a success clears the account's count.
"""

from __future__ import annotations

import functools
import logging
import secrets
from datetime import datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from engine.api.auth import check_password, hash_password
from engine.store import logins
from engine.store.models import TeamMember, normalize_email, utcnow
from engine.web.dependencies import FormStr, ViewerDep, services_of, signing_keys
from engine.web.rendering import bad_form, render
from engine.web.security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    client_address,
    current_member,
    login_token,
    login_token_expiry,
    new_login_nonce,
    safe_next,
    same,
    session_limits,
    throttle_policies,
)

router = APIRouter()
log = logging.getLogger(__name__)


@functools.cache
def _decoy_hash() -> str:
    """Checked for unknown emails, so a wrong email takes as long as a wrong password."""
    return hash_password(secrets.token_urlsafe(16))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https" or services_of(
        request
    ).settings.public_base_url.startswith("https://")


def _login_form(
    request: Request,
    next_: str | None,
    *,
    error: str | None = None,
    email: str = "",
    status_code: int = 200,
    retry_after: timedelta | None = None,
) -> Response:
    nonce = new_login_nonce()
    lifetime = timedelta(minutes=services_of(request).settings.login_form_minutes)
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        next=safe_next(next_),
        token=login_token(signing_keys(request), nonce, utcnow() + lifetime),
        error=error,
        email=email,
        flash=None,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=int(lifetime.total_seconds()),
        path="/login",
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    if retry_after is not None:
        response.headers["Retry-After"] = str(max(1, int(retry_after.total_seconds() + 0.999)))
    return response


def _in_words(wait: timedelta) -> str:
    seconds = max(1, int(wait.total_seconds() + 0.999))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{(seconds + 59) // 60} minutes"


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if current_member(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _login_form(request, next)


def _fresh_form(request: Request, token: str, now: datetime) -> bool:
    """Whether the form's token is valid and unexpired, using up its nonce."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    expires_at = login_token_expiry(signing_keys(request), token, nonce, now)
    if expires_at is None:
        return False
    with services_of(request).sessions.begin() as session:
        return logins.use_login_nonce(session, nonce, expires_at)


@router.post("/login")
def login(
    request: Request,
    email: FormStr = "",
    password: FormStr = "",
    token: FormStr = "",
    next: FormStr = "",
) -> Response:
    services = services_of(request)
    settings = services.settings
    now = utcnow()
    if not _fresh_form(request, token, now):
        return _login_form(
            request, next, error="The login form expired; please try again.", status_code=400
        )
    address = client_address(request)
    account_policy, client_policy = throttle_policies(settings)
    account = logins.account_key(email)
    checks = [(account, account_policy), (logins.client_key(address), client_policy)]
    with services.sessions() as session:
        wait = logins.login_wait(session, checks, now)
    if wait > timedelta(0):
        log.warning("login throttled: email %r from %s, %s to wait", email[:320], address, wait)
        return _login_form(
            request,
            next,
            error=f"Too many failed logins. Try again in {_in_words(wait)}.",
            email=email,
            status_code=429,
            retry_after=wait,
        )
    with services.sessions() as session:
        member = session.get(TeamMember, normalize_email(email)) if email.strip() else None
        stored = member.password_hash if member is not None else None
    right = check_password(password, stored or _decoy_hash()) and stored is not None
    if not right or member is None or member.disabled_at is not None:
        with services.sessions.begin() as session:
            locked = [
                key for key, policy in checks if logins.record_failure(session, key, policy, now)
            ]
        log.warning(
            "failed login: email %r from %s%s",
            email[:320],
            address,
            " (account disabled)" if right and member is not None else "",
        )
        for key in locked:
            log.warning("login locked out for %s minutes: %s", settings.login_lockout_minutes, key)
        return _login_form(
            request, next, error="Wrong email or password.", email=email, status_code=401
        )
    limits = session_limits(settings)
    with services.sessions.begin() as session:
        logins.clear_failures(session, account)
        logins.prune(session, limits, account_policy.lockout, now)
        secret = logins.open_session(session, member.email, now)
    log.info("login: %s from %s", member.email, address)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(limits.absolute.total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, viewer: ViewerDep, csrf: FormStr = "") -> Response:
    """End this session (other devices' sessions stay; disabling a member ends them all)."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    with services_of(request).sessions.begin() as session:
        logins.end_session(session, request.cookies.get(SESSION_COOKIE, ""), utcnow())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
