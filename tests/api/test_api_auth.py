"""Every /api route needs an API token holding the scope the route names; webhooks and
unsubscribe links need none. Expired and revoked tokens stop working at once."""

from __future__ import annotations

import warnings

import httpx
import pytest
from fastapi import FastAPI

from engine.api.app import create_app
from engine.api.auth import create_api_token
from engine.scopes import Scope
from engine.services import Services
from tests.helpers.api import ROUTE_SCOPES, allowed, api_routes, concrete


def client_for(app: FastAPI, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app),
        base_url="http://testserver",
        headers={"Authorization": f"Bearer {token}"},
    )


def new_token(services: Services, name: str, *scopes: str, expires: str | None = "1d") -> str:
    with services.sessions.begin() as session:
        return create_api_token(session, name, scopes, expires)


def last_used_of(services: Services, name: str) -> object:
    """The `last_used_at` of the token called ``name``."""
    from sqlalchemy import select

    from engine.store.models import ApiToken

    with services.sessions() as session:
        return session.scalars(select(ApiToken.last_used_at).where(ApiToken.name == name)).one()


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

    from engine.store.models import ApiToken

    with services.sessions.begin() as session:
        token = create_api_token(session, "last-used-check", ["operate"])
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


async def test_a_token_use_is_noted_after_the_response_is_sent(
    app: FastAPI, services: Services
) -> None:
    """The once-a-minute note of a token's use is a write (under SQLite it waits for the
    writer lock): the request that triggers it has its whole answer first."""
    token = new_token(services, "noted-after-the-answer", "operate")

    def last_used() -> object:
        return last_used_of(services, "noted-after-the-answer")

    seen_when_answered: list[object] = []
    status: list[int] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        if message["type"] == "http.response.start":
            status.append(int(message["status"]))  # type: ignore[call-overload]
        if message["type"] == "http.response.body" and not message.get("more_body"):
            seen_when_answered.append(last_used())

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/tasks",
        "raw_path": b"/api/tasks",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), (b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert status == [200]
    assert seen_when_answered == [None]  # the answer went out before the write
    assert last_used() is not None  # and the use is noted once it has


async def test_a_store_too_busy_to_note_a_use_does_not_fail_the_request(
    app: FastAPI,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Noting a use is bookkeeping: when the store refuses the write, the request still
    has its answer, the refusal is logged, and a later request notes the use."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from engine.services import tokens

    token = new_token(services, "noted-when-the-store-is-free", "operate")
    real_note_use = tokens.note_use

    def locked(store: object, token_id: int) -> None:
        raise OperationalError(
            "UPDATE api_tokens", {}, sqlite3.OperationalError("database is locked")
        )

    def last_used() -> object:
        return last_used_of(services, "noted-when-the-store-is-free")

    async with client_for(app, token) as client:
        monkeypatch.setattr(tokens, "note_use", locked)
        assert (await client.get("/api/tasks")).status_code == 200
        assert last_used() is None
        assert "its use was not noted (database is locked)" in caplog.text
        monkeypatch.setattr(tokens, "note_use", real_note_use)
        assert (await client.get("/api/tasks")).status_code == 200
        assert last_used() is not None


async def test_every_api_route_refuses_a_token_without_its_scope(
    app: FastAPI, services: Services
) -> None:
    routes = api_routes(app)
    templates = {(method, concrete(path)): (method, path) for method, path in ROUTE_SCOPES}
    assert set(routes) == set(templates), "classify every /api route in ROUTE_SCOPES"
    for scope in Scope:
        async with client_for(app, new_token(services, f"only-{scope}", scope)) as client:
            for method, path in routes:
                response = await client.request(method, path, json={})
                if allowed(scope, *templates[method, path]):
                    assert response.status_code not in (401, 403), (scope, method, path)
                    continue
                assert response.status_code == 403, (scope, method, path, response.text)
                detail = response.json()["detail"]
                needed = ROUTE_SCOPES[templates[method, path]] or {Scope.ADMIN}
                assert "lacks the" in detail and all(f"'{s}'" in detail for s in needed), detail


async def test_a_token_without_admin_cannot_touch_the_team(
    app: FastAPI, services: Services
) -> None:
    """The issue's probe: any token reset the admin's password or made a new admin."""
    from engine.store.models import TeamMember

    body = {"name": "Mallory", "roles": ["admin"], "is_admin": True, "password": "pwned-pwned"}
    for scope in ("ingest", "operate"):
        async with client_for(app, new_token(services, f"team-{scope}", scope)) as client:
            for email in ("admin@demo.example", f"mallory-{scope}@evil.example"):
                response = await client.put(f"/api/team/{email}", json=body)
                assert response.status_code == 403, response.text
                assert "'admin'" in response.json()["detail"]
                with services.sessions() as session:
                    assert session.get(TeamMember, email) is None


async def test_revoking_a_token_takes_effect_at_once(app: FastAPI, services: Services) -> None:
    token = new_token(services, "to-revoke", "operate")
    async with (
        client_for(app, token) as client,
        client_for(app, new_token(services, "revoker", "admin")) as admin,
    ):
        assert (await client.get("/api/tasks")).status_code == 200
        [row] = [t for t in (await admin.get("/api/tokens")).json() if t["name"] == "to-revoke"]
        revoked = await admin.delete(f"/api/tokens/{row['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["state"] == "revoked" and revoked.json()["revoked_at"]
        refused = await client.get("/api/tasks")
        assert refused.status_code == 401
        assert "revoked" in refused.json()["detail"]
        assert refused.headers["www-authenticate"] == "Bearer"
        again = await admin.delete(f"/api/tokens/{row['id']}")
        assert again.status_code == 200
        assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # the first time
        assert (await admin.delete("/api/tokens/999999999")).status_code == 404


async def test_an_expired_token_is_refused_at_once(app: FastAPI, services: Services) -> None:
    from datetime import timedelta

    from sqlalchemy import select

    from engine.store.models import ApiToken, utcnow

    token = new_token(services, "short-lived", "operate", expires="1h")
    async with client_for(app, token) as client:
        assert (await client.get("/api/tasks")).status_code == 200
        with services.sessions.begin() as session:
            row = session.scalars(
                select(ApiToken).where(ApiToken.token_hash == ApiToken.hash_token(token))
            ).one()
            row.expires_at = utcnow() - timedelta(seconds=1)
        refused = await client.get("/api/tasks")
        assert refused.status_code == 401
        assert "expired" in refused.json()["detail"]


async def test_tokens_are_created_listed_and_revoked_through_the_api(
    app: FastAPI, services: Services
) -> None:
    async with client_for(app, new_token(services, "token-admin", "admin")) as admin:
        created = await admin.post(
            "/api/tokens", json={"name": "crm-sync", "scopes": ["ingest"], "expires": "30d"}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        secret = body["token"]
        assert secret.startswith("pbk_") and body["scopes"] == ["ingest"]
        assert body["created_by"] == "api:token-admin" and body["state"] == "active"
        assert body["expires_at"] is not None
        listing = await admin.get("/api/tokens")
        assert listing.status_code == 200
        assert secret not in listing.text and "token_hash" not in listing.text
        assert body["id"] in [t["id"] for t in listing.json()]
        async with client_for(app, secret) as crm:
            assert (await crm.get("/api/customers/nobody-here")).status_code == 404
            assert (await crm.get("/api/tasks")).status_code == 403
            assert (await crm.get("/api/tokens")).status_code == 403
            assert (
                await crm.post("/api/tokens", json={"name": "up", "scopes": ["admin"]})
            ).status_code == 403

        never = await admin.post(
            "/api/tokens", json={"name": "forever", "scopes": ["operate"], "expires": "never"}
        )
        assert never.status_code == 201 and never.json()["expires_at"] is None
        for bad in (
            {"name": "x", "scopes": []},
            {"name": "x", "scopes": ["root"]},
            {"name": "x", "scopes": ["ingest"], "expires": "soon"},
            {"name": "x", "scopes": ["ingest"], "expires": "0s"},
            {"name": "x", "scopes": ["ingest"], "expires": "99999999999w"},
            {"name": "", "scopes": ["ingest"]},
        ):
            refused = await admin.post("/api/tokens", json=bad)
            assert refused.status_code == 422, (bad, refused.text)
