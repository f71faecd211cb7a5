"""Every /api route needs an API token; webhooks and unsubscribe links need none."""

from __future__ import annotations

import warnings

import httpx
from apikit import api_routes
from fastapi import FastAPI

from engine.api.app import create_app
from engine.api.services import Services


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
