"""Request limits: a token before any body byte, bodies capped while they stream, bounded
fields, and the server's connection limits (a real uvicorn on a local port)."""

from __future__ import annotations

import asyncio
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Connection
from sqlalchemy.orm import Session

from engine.api.schemas import MAX_ATTRIBUTES_BYTES, MAX_PROPERTIES_BYTES
from engine.api.serving import server_config
from engine.services import Services, tokens
from engine.services.tokens import UsableToken
from engine.settings import Settings
from engine.store.models import Customer, TeamMember

HUNDRED_MB = 100 * 1024 * 1024
XSS_EMAIL = '"><img/src=x/onerror=alert(1)>@xss.example'


async def call_asgi(
    app: FastAPI, method: str, path: str, headers: dict[str, str], body: bytes = b"x" * 65536
) -> tuple[int, bytes, int]:
    """Call the app directly: (status, response body, how many times it asked for the body)."""
    asked = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal asked
        asked += 1
        return {"type": "http.request", "body": body, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, content, asked


# -- authenticate before parsing -----------------------------------------------------------
async def test_an_anonymous_100_mb_body_is_refused_without_reading_a_byte(app: FastAPI) -> None:
    headers = {"content-type": "application/json", "content-length": str(HUNDRED_MB)}
    status, content, asked = await call_asgi(app, "POST", "/api/events", headers)
    assert status == 401, content
    assert asked == 0  # the body was never asked for
    status, _, asked = await call_asgi(
        app, "POST", "/api/events", {**headers, "authorization": "Bearer pbk_not-a-token"}
    )
    assert (status, asked) == (401, 0)


async def test_malformed_json_without_a_token_is_401_not_422(anon: httpx.AsyncClient) -> None:
    response = await anon.post(
        "/api/events", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


async def test_a_token_still_opens_the_api(api: httpx.AsyncClient, customer: str) -> None:
    event = {"id": f"limits-{uuid.uuid4().hex}", "customer_id": customer, "name": "x.y"}
    assert (await api.post("/api/events", json=event)).status_code == 202


# -- bodies capped while they stream -------------------------------------------------------
async def test_one_token_lookup_per_request(
    api: httpx.AsyncClient, customer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The middleware checks the token before the body; the route reuses that check."""
    lookups: list[str] = []
    real = tokens.check

    def counted(session: Session | Connection, secret: str) -> UsableToken:
        lookups.append(secret)
        return real(session, secret)

    monkeypatch.setattr(tokens, "check", counted)
    assert (await api.get(f"/api/customers/{customer}")).status_code == 200
    assert len(lookups) == 1


async def test_a_chunked_webhook_body_over_the_cap_is_413_before_it_is_all_read(
    anon: httpx.AsyncClient, api_settings: Settings
) -> None:
    chunk = b"[" + b" " * (1024 * 1024 - 1)
    total = api_settings.webhook_max_body_bytes // len(chunk) + 20  # 28 MiB by default
    produced = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal produced
        for _ in range(total):
            produced += 1
            yield chunk

    response = await anon.post("/webhooks/sendgrid", content=body())  # no Content-Length
    assert response.status_code == 413, response.text
    assert "at most" in response.json()["detail"]
    assert produced <= api_settings.webhook_max_body_bytes // len(chunk) + 2  # not buffered


async def test_a_declared_length_over_the_cap_is_413_at_once(app: FastAPI) -> None:
    headers = {"content-length": str(HUNDRED_MB)}
    status, _, asked = await call_asgi(app, "POST", "/webhooks/sendgrid", headers)
    assert (status, asked) == (413, 0)


async def test_an_api_body_over_the_cap_is_413(
    api: httpx.AsyncClient, api_settings: Settings
) -> None:
    big = {"id": "big", "customer_id": "c", "name": "x.y", "properties": {}}
    payload = json.dumps({"events": [big] * (api_settings.api_max_body_bytes // 40)})
    assert len(payload) > api_settings.api_max_body_bytes
    response = await api.post(
        "/api/events", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


# -- bounded fields --------------------------------------------------------------------------
async def test_oversized_properties_are_422_naming_the_field(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    event_id = f"fat-{uuid.uuid4().hex}"
    event = {
        "id": event_id,
        "customer_id": customer,
        "name": "x.y",
        "properties": {"blob": "x" * MAX_PROPERTIES_BYTES},
    }
    response = await api.post("/api/events", json=event)
    assert response.status_code == 422
    assert [
        e["loc"] for e in response.json()["detail"] if f"at most {MAX_PROPERTIES_BYTES}" in e["msg"]
    ] == [["body", "properties"]]
    assert len(response.content) < 5000  # the rejected value is not echoed back

    response = await api.put(
        f"/api/customers/{customer}",
        json={"name": "Fat", "attributes": {"notes": "y" * MAX_ATTRIBUTES_BYTES}},
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "attributes"]
    with services.sessions() as session:
        assert session.get(Customer, customer).name != "Fat"  # type: ignore[union-attr]


async def test_free_text_and_lists_are_bounded(api: httpx.AsyncClient, customer: str) -> None:
    response = await api.put(
        f"/api/customers/{customer}", json={"name": "Tags", "tags": ["t"] * 101}
    )
    assert response.status_code == 422
    response = await api.post(
        f"/api/enrollments/onboarding/{customer}/cancel", json={"reason": "r" * 1001}
    )
    assert response.status_code == 422


# -- header injection and addresses ----------------------------------------------------------
async def test_a_line_break_in_a_name_is_refused(api: httpx.AsyncClient, customer: str) -> None:
    contact = {"email": "ann@acme.example", "first_name": "Ann\r\nBcc: all@evil.example"}
    response = await api.put(
        f"/api/customers/{customer}", json={"name": "Acme", "contacts": [contact]}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "contacts", 0, "first_name"]
    response = await api.put(f"/api/customers/{customer}", json={"name": "Acme\nSubject: x"})
    assert response.status_code == 422


async def test_an_email_with_markup_is_refused(
    api: httpx.AsyncClient, services: Services, customer: str
) -> None:
    response = await api.put(
        f"/api/customers/{customer}", json={"name": "Acme", "contacts": [{"email": XSS_EMAIL}]}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "contacts", 0, "email"]
    markup = '"><svg onload=alert(1)>@xss.example'  # no slash: it must reach the route
    response = await api.put(f"/api/team/{markup}", json={"name": "X"})
    assert response.status_code == 422
    with services.sessions() as session:
        assert session.get(TeamMember, markup) is None


# -- 422s do not echo passwords --------------------------------------------------------------
async def test_a_422_never_echoes_a_password(api: httpx.AsyncClient) -> None:
    short = "hunter2"  # under the 8-character minimum
    response = await api.put("/api/team/pw@vendor.example", json={"name": "P", "password": short})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]
    assert short not in response.text
    secret = "correct horse battery staple"
    response = await api.put("/api/team/pw@vendor.example", json={"password": secret})
    assert response.status_code == 422  # name is missing: pydantic echoes the whole body
    assert secret not in response.text


# -- /docs -----------------------------------------------------------------------------------
async def test_docs_load_nothing_from_another_host(anon: httpx.AsyncClient) -> None:
    for page in ("/docs", "/redoc"):
        response = await anon.get(page)
        assert response.status_code == 200
        assert "http://" not in response.text and "https://" not in response.text, page
        assert "//" not in response.text.replace("://", "")  # no protocol-relative URLs
    asset = (await anon.get("/docs-assets/swagger-ui-bundle.js")).status_code
    assert asset == 200


async def test_docs_can_be_switched_off(services: Services) -> None:
    from engine.api.app import create_app

    settings = services.settings.model_copy(update={"api_docs": False})
    app = create_app(Services(settings, services.sessions, services.client, services.project))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/redoc")).status_code == 404


# -- the server's connection limits (real uvicorn) ----------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(app: FastAPI, settings: Settings) -> AsyncIterator[int]:
    port = _free_port()
    server = uvicorn.Server(
        server_config(app, settings, "127.0.0.1", port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        assert not task.done(), task
        await asyncio.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def test_a_real_server_answers_an_anonymous_upload_after_its_first_chunk(
    app: FastAPI, api_settings: Settings
) -> None:
    async with serving(app, api_settings) as port, connection(port) as (reader, writer):
        writer.write(
            b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {HUNDRED_MB}\r\n\r\n".encode()
            + b"[" * 65536
        )
        await writer.drain()
        started = time.monotonic()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert head.startswith(b"HTTP/1.1 401"), head
        assert b"connection: close" in head.lower()
        assert time.monotonic() - started < 5


async def test_a_request_head_sent_byte_by_byte_loses_its_connection(
    app: FastAPI, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"http_header_timeout": 1.0})
    async with serving(app, settings) as port, connection(port) as (reader, writer):
        started = time.monotonic()
        closed = False
        for byte in b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100:
            try:
                writer.write(bytes([byte]))
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.3) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
                break
        assert closed, "the slow client kept its connection"
        assert time.monotonic() - started < 4


async def test_a_prompt_client_keeps_its_keep_alive_connection(
    app: FastAPI, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"http_header_timeout": 1.0})
    async with serving(app, settings) as port, connection(port) as (reader, writer):
        for _ in range(2):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            await asyncio.wait_for(reader.readexactly(15), 5)  # {"status":"ok"}
            await asyncio.sleep(0.6)  # idle less than the keep-alive timeout


async def test_connections_past_the_concurrency_limit_are_503(
    app: FastAPI, api_settings: Settings
) -> None:
    settings = api_settings.model_copy(update={"http_limit_concurrency": 2})
    async with serving(app, settings) as port, connection(port):  # one idle connection
        await asyncio.sleep(0.1)
        async with connection(port) as (reader, writer):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 503"), head
