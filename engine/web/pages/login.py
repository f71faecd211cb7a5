"""Logging in and out: the login form (with its login-CSRF nonce) and the session cookie."""

from __future__ import annotations

import functools
import secrets

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from engine.api.auth import (
    SESSION_COOKIE,
    SESSION_SECONDS,
    check_password,
    hash_password,
    member_from_cookie,
    session_cookie,
)
from engine.store.models import TeamMember, normalize_email
from engine.web.dependencies import FormStr, ViewerDep, services_of, signing_keys
from engine.web.rendering import bad_form, render
from engine.web.security import LOGIN_COOKIE, login_token, new_login_nonce, safe_next, same

router = APIRouter()


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
) -> Response:
    nonce = new_login_nonce()
    response = render(
        request,
        "login.html",
        None,
        status_code=status_code,
        next=safe_next(next_),
        token=login_token(signing_keys(request), nonce),
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
    if not nonce or not same(token, login_token(signing_keys(request), nonce)):
        return _login_form(
            request, next, error="The login form expired; please try again.", status_code=400
        )
    with services_of(request).sessions() as session:
        member = session.get(TeamMember, normalize_email(email)) if email.strip() else None
        stored = member.password_hash if member is not None else None
    if not check_password(password, stored or _decoy_hash()) or member is None or not stored:
        return _login_form(
            request, next, error="Wrong email or password.", email=email, status_code=401
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        session_cookie(signing_keys(request), member.email),
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
        return bad_form(request, viewer)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
