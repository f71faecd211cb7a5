"""The ASGI application: API, web UI, webhooks and unsubscribe pages."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from engine.api import routes
from engine.api.errors import service_error_response
from engine.services import ServiceError, Services

log = logging.getLogger(__name__)


def create_app(services: Services) -> FastAPI:
    """The app for ``services``; routers are added by the modules that own them."""
    app = FastAPI(
        title="Playbook engine",
        version="0.1.0",
        description="Customer-success playbooks as code, run durably on Temporal. "
        "Every /api route needs `Authorization: Bearer <token>` "
        "(create one with `playbook token create NAME`).",
    )
    app.state.services = services
    app.include_router(routes.router)
    for module in ("engine.api.webhooks", "engine.api.unsubscribe", "engine.web.pages"):
        try:
            router = __import__(module, fromlist=["router"]).router
        except ModuleNotFoundError:
            continue
        app.include_router(router)

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
