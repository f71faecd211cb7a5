"""Request limits enforced before any route reads a body: a token first, then a size cap.

`RequestLimits` is a pure ASGI middleware, so it sees a request before FastAPI parses it:

- ``/api/*`` needs a valid bearer token (``engine.api.auth.require_token``) before a single
  body byte is read: an anonymous 100 MB upload is answered 401 from its headers, and
  malformed JSON without a token is a 401, not a 422. The token's use, noted once a minute,
  is written after the response is sent (`engine.api.auth.note_token_use`).
- Every body is capped while it streams, chunked uploads included: a declared
  ``Content-Length`` over the cap is refused at once, and a body that grows past it is
  refused at the first byte too many, so nothing larger is ever buffered (413). The cap
  depends on the route: ``/api/*``, ``/webhooks/*``, and everything else (the UI's forms).
- A body must arrive whole within ``HTTP_BODY_TIMEOUT`` seconds (408), so a client
  trickling a byte at a time cannot hold a request open.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from fastapi.security import HTTPBearer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.api.auth import caller_for, note_token_use
from engine.settings import Settings

_bearer = HTTPBearer(auto_error=False)
CLOSE = {"Connection": "close"}


class BodyTooLarge(HTTPException):
    """A request body past its route's cap (raised from ``receive``, answered 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            status.HTTP_413_CONTENT_TOO_LARGE,
            f"request body too large: this route accepts at most {limit} bytes",
            headers=CLOSE,  # the rest of the body is not read: end the connection
        )


class BodyTooSlow(HTTPException):
    """A request body not received within the body timeout (answered 408)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            status.HTTP_408_REQUEST_TIMEOUT,
            f"request body not received within {seconds:g} s",
            headers=CLOSE,
        )


@dataclass(frozen=True)
class BodyLimits:
    """The body caps by route, in bytes, and the time a body may take."""

    api: int
    webhooks: int
    other: int
    seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> BodyLimits:
        return cls(
            api=settings.api_max_body_bytes,
            webhooks=settings.webhook_max_body_bytes,
            other=settings.form_max_body_bytes,
            seconds=settings.http_body_timeout,
        )

    def for_path(self, path: str) -> int:
        if path == "/api" or path.startswith("/api/"):
            return self.api
        if path.startswith("/webhooks/"):
            return self.webhooks
        return self.other


def _route_path(scope: Scope) -> str:
    """The path as the app's routes see it (without a proxy's ``root_path``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class RequestLimits:
    """ASGI middleware: authenticate /api before its body, cap and time every body."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = _route_path(scope)
        api = path == "/api" or path.startswith("/api/")
        if api:
            refusal = await _unauthenticated(scope)
            if refusal is not None:
                if _has_body(scope):  # unread: close rather than drain it
                    refusal.headers["Connection"] = "close"
                await refusal(scope, receive, send)
                return
        try:
            limit = self.limits.for_path(path)
            declared = _content_length(scope)
            if declared is not None and declared > limit:
                await _answer(BodyTooLarge(limit))(scope, receive, send)
                return
            await self._guarded(scope, receive, send, limit)
        finally:
            if api:  # the response is sent: now note the token's use, if it is due
                await note_token_use(Request(scope))

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app with a ``receive`` that counts and times the body as it arrives."""
        seconds = self.limits.seconds
        deadline = time.monotonic() + seconds
        received = 0
        complete = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # the body is in: later receives wait for a disconnect, untimed
                return await receive()
            try:
                async with asyncio.timeout(max(deadline - time.monotonic(), 0)):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(seconds) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
                complete = not message.get("more_body", False)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (BodyTooLarge, BodyTooSlow) as exc:
            # Raised where no route turned it into a response (a body read outside FastAPI's
            # request handling); answer it here unless a response is already under way.
            if started:
                raise
            await _answer(exc)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else None
    return None


def _has_body(scope: Scope) -> bool:
    names = {name for name, _ in scope["headers"]}
    return b"transfer-encoding" in names or bool(_content_length(scope))


def _answer(exc: HTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unauthenticated(scope: Scope) -> JSONResponse | None:
    """A 401 for an /api request without a valid bearer token, else None; reads no body."""
    request = Request(scope)  # no receive: the body cannot be read from here
    try:
        credentials = await _bearer(request)
        # The route's own `require_token` dependency reuses this caller (`request.state`
        # lives in the ASGI scope), so a request costs one token lookup, not two.
        request.state.api_caller = await caller_for(request, credentials, note_later=True)
    except HTTPException as exc:
        return _answer(exc)
    return None
