"""A freshly started API process answers its first request as fast as its later ones:
`warm_routes` builds what FastAPI would otherwise build on that request."""

from __future__ import annotations

from typing import Any

import fastapi.routing
import httpx
import pytest

from engine.api.app import create_app, warm_routes
from engine.services import Services


async def routes_built_by_first_requests(
    services: Services,
    token: str,
    customer: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    warm: bool,
) -> list[str]:
    """The endpoints whose dependencies FastAPI analysed while a new app answered an event
    and a task list (`get_dependant` is where it builds a route's request handling)."""
    app = create_app(services)
    if warm:
        warm_routes(app)
    built: list[str] = []
    real = fastapi.routing.get_dependant

    def counting(*args: Any, **kwargs: Any) -> Any:
        built.append(str(kwargs.get("path")))
        return real(*args, **kwargs)

    monkeypatch.setattr(fastapi.routing, "get_dependant", counting)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
    ) as client:
        event = {"id": f"warm-{customer}", "customer_id": customer, "name": "x.y"}
        assert (await client.post("/api/events", json=event)).status_code == 202
        assert (await client.get("/api/tasks")).status_code == 200
    return built


async def test_warm_routes_leaves_nothing_to_build_on_the_first_request(
    services: Services, api_token: str, customer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = await routes_built_by_first_requests(
        services, api_token, customer, monkeypatch, warm=True
    )
    assert built == []


async def test_without_warming_the_first_request_builds_the_api_routes(
    services: Services, api_token: str, customer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `warm_routes` is for: FastAPI builds the /api routes on their first match."""
    built = await routes_built_by_first_requests(
        services, api_token, customer, monkeypatch, warm=False
    )
    assert "/api/events" in built
