"""Every /api route needs an API token; webhooks and unsubscribe links need none."""

from __future__ import annotations

import warnings

import httpx
from fastapi import FastAPI

from engine.api.app import create_app
from engine.services import Services
from tests.helpers.api import api_routes


async def test_every_api_route_refuses_a_request_without_a_token(
    app: FastAPI, anon: httpx.AsyncClient
) -> None:
    routes = api_routes(app)
    assert len(routes) >= 14, routes  # events, customers, team, tasks, enrollments
    for method, path in routes:
        response = await anon.request(method, path, json={})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == "Bearer"
        assert "token" in response.json()["detail"]


async def test_a_wrong_token_or_scheme_is_refused(app: FastAPI, anon: httpx.AsyncClient) -> None:
    for method, path in api_routes(app):
        for header in ("Bearer pbk_not-a-real-token", "Basic dXNlcjpwYXNz", "Bearer", "pbk_x"):
            response = await anon.request(method, path, headers={"Authorization": header})
            assert response.status_code == 401, (method, path, header, response.text)


async def test_a_valid_token_gets_in(api: httpx.AsyncClient) -> None:
    response = await api.get("/api/tasks")
    assert response.status_code == 200
    assert isinstance(response.json(), list)


async def test_the_openapi_document_declares_the_bearer_scheme(
    anon: httpx.AsyncClient, services: Services
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. duplicate operation ids
        create_app(services).openapi()
    document = (await anon.get("/openapi.json")).json()
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    paths = document["paths"]
    assert "/webhooks/sendgrid" in paths
    assert "/unsubscribe/{token}" in paths
    for path, operations in paths.items():
        if path.startswith("/api"):
            for operation in operations.values():
                assert operation.get("security"), path
        if path.startswith(("/webhooks", "/unsubscribe")):
            for operation in operations.values():
                assert not operation.get("security"), path


async def test_webhooks_and_unsubscribe_do_not_ask_for_a_token(
    anon: httpx.AsyncClient,
) -> None:
    # They answer for their own reasons (no signature, bad link), never "token required".
    webhook = await anon.post("/webhooks/sendgrid", content=b"[]")
    assert webhook.status_code == 401
    assert "token" not in webhook.json()["detail"]
    page = await anon.get("/unsubscribe/not-a-token")
    assert page.status_code == 400


async def test_token_use_is_noted_to_the_minute_without_a_write_per_request(
    app: FastAPI, services: Services
) -> None:
    """`last_used_at` says when a token was last used, but a burst of requests does not
    turn each one into a write transaction on the store."""
    from datetime import timedelta

    from sqlalchemy import select

    from engine.api.auth import create_api_token
    from engine.store.models import ApiToken

    with services.sessions.begin() as session:
        token = create_api_token(session, "last-used-check")
    digest = ApiToken.hash_token(token)

    def last_used() -> object:
        with services.sessions() as session:
            return session.scalars(
                select(ApiToken.last_used_at).where(ApiToken.token_hash == digest)
            ).one()

    assert last_used() is None
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as c:
        assert (await c.get("/api/tasks")).status_code == 200
        first = last_used()
        assert first is not None
        for _ in range(3):
            assert (await c.get("/api/tasks")).status_code == 200
        assert last_used() == first  # within the minute: not written again
        with services.sessions.begin() as session:
            row = session.scalars(select(ApiToken).where(ApiToken.token_hash == digest)).one()
            row.last_used_at = row.last_used_at - timedelta(minutes=2)
        stale = last_used()
        assert (await c.get("/api/tasks")).status_code == 200
        assert last_used() > stale  # a minute later it is noted again
