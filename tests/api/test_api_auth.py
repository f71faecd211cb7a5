"""Every /api route needs an API token; webhooks and unsubscribe links need none."""

from __future__ import annotations

import re

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

try:  # FastAPI >= 0.160 keeps included routers as one route each; this flattens them
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI has flat app.routes
    iter_route_contexts = None


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every /api route, path parameters filled in."""
    routes = list(iter_route_contexts(app.routes)) if iter_route_contexts else app.routes
    found = []
    for route in routes:
        original = getattr(route, "original_route", route)
        path = getattr(route, "path", None) or ""
        if not isinstance(original, APIRoute) or not path.startswith("/api"):
            continue
        concrete = re.sub(r"\{[^}]+\}", "some-id", path)
        found += [(method, concrete) for method in sorted(route.methods or ())]
    return found


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


async def test_the_openapi_document_declares_the_bearer_scheme(anon: httpx.AsyncClient) -> None:
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
