"""The ASGI application: API, web UI, webhooks and unsubscribe pages."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from engine.api import routes, unsubscribe, webhooks
from engine.api.errors import service_error_response
from engine.services import ServiceError, Services
from engine.web import pages

log = logging.getLogger(__name__)


def create_app(services: Services) -> FastAPI:
    """The app for ``services``: the API, the webhooks, the unsubscribe pages and the web UI.

    Each router is imported and included explicitly, so a broken import in any of them
    fails the start instead of silently leaving its routes out.
    """
    app = FastAPI(
        title="Playbook engine",
        version="0.1.0",
        description="Customer-success playbooks as code, run durably on Temporal. "
        "Every /api route needs `Authorization: Bearer <token>` with the route's scope: "
        "`ingest` (events, customers), `operate` (tasks, enrollments) or `admin` (all, plus "
        "the team and tokens); create one with `playbook token create NAME --scope ...`.",
    )
    app.state.services = services
    app.include_router(routes.router)
    app.include_router(webhooks.router)
    app.include_router(unsubscribe.router)
    app.include_router(pages.router)

    app.add_exception_handler(ServiceError, service_error_response)

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
