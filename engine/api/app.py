"""The ASGI application: API, web UI, webhooks and unsubscribe pages."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError

from engine.api import reports, routes, unsubscribe, webhooks
from engine.api.errors import service_error_response
from engine.api.limits import BodyLimits, RequestLimits
from engine.services import ServiceError, Services
from engine.web import pages

log = logging.getLogger(__name__)
# Field names whose values a 422 never echoes back.
SENSITIVE = ("password", "secret", "token")
HIDDEN = "(hidden)"
MAX_ECHO = 2000  # characters of a rejected input a 422 shows


def _sensitive(name: object) -> bool:
    return isinstance(name, str) and any(word in name.lower() for word in SENSITIVE)


def _scrub(value: Any) -> Any:
    """``value`` with every sensitive key's value hidden, at any depth."""
    if isinstance(value, dict):
        return {k: HIDDEN if _sensitive(k) else _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error safe to send back: no password, secret or token in its input.

    An error about such a field loses its input; any other input (a whole body for a
    missing field, say) has those keys hidden, and one too large to be worth echoing
    (an oversized ``properties``) is summarised.
    """
    fixed = dict(error)
    if "input" in fixed:
        if any(_sensitive(part) for part in error.get("loc", ())):
            fixed["input"] = HIDDEN
        elif len(shown := repr(fixed["input"])) > MAX_ECHO:
            fixed["input"] = f"(not shown: {len(shown)} characters)"
        else:
            fixed["input"] = _scrub(fixed["input"])
    return fixed


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, minus echoed secrets."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": jsonable_encoder([redact(e) for e in exc.errors()])}, status_code=422
    )


def warm_routes(app: FastAPI) -> None:
    """Build every route's request handling now, so that the first request does not.

    FastAPI builds an included router's routes (each endpoint's dependencies and
    validators) when a request first matches one of them: about 50 ms for the /api router,
    paid by the first event a freshly started API process takes, on top of its own time.
    Generating the OpenAPI document walks every route and so builds them all (and caches the
    document for /docs). Call it once the app is made, before the process says it is ready.
    """
    app.openapi()


def create_app(services: Services) -> FastAPI:
    """The app for ``services``: the API, the webhooks, the unsubscribe pages and the web UI.

    Each router is imported and included explicitly, so a broken import in any of them
    fails the start instead of silently leaving its routes out. /docs and /redoc load their
    scripts from a copy shipped in a Python package (``fastapi-offline``), never from a CDN,
    and are left out with ``API_DOCS=false``.
    """
    docs = services.settings.api_docs
    app = FastAPIOffline(
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        static_url="/docs-assets",
        title="Playbook engine",
        version="0.1.0",
        description="Customer-success playbooks as code, run durably on Temporal. "
        "Every /api route needs `Authorization: Bearer <token>` with the route's scope: "
        "`ingest` (events, customers), `operate` (tasks, enrollments) or `admin` (all, plus "
        "the team and tokens); create one with `playbook token create NAME --scope ...`.",
    )
    app.state.services = services
    app.include_router(routes.router)
    app.include_router(reports.router)
    app.include_router(webhooks.router)
    app.include_router(unsubscribe.router)
    app.include_router(pages.router)

    app.add_middleware(RequestLimits, limits=BodyLimits.from_settings(services.settings))
    app.add_exception_handler(ServiceError, service_error_response)
    app.add_exception_handler(RequestValidationError, validation_error)

    @app.exception_handler(OperationalError)
    async def store_unavailable(request: Request, exc: OperationalError) -> JSONResponse:
        # SQLite's writer lock held past the busy timeout, or PostgreSQL unreachable: the
        # request's transaction was rolled back, and a retry is safe (events are idempotent
        # by id), so say so instead of answering 500.
        log.warning("store unavailable on %s %s: %s", request.method, request.url.path, exc.orig)
        return JSONResponse(
            {"detail": f"the database is busy or unreachable ({exc.orig}); retry shortly"},
            status_code=503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; it was logged"}, status_code=500)

    @app.get("/healthz", tags=["ops"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
