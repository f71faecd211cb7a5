"""Nothing the API is sent makes it answer 500: odd ids, odd bodies, odd types, huge input."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx
import pytest

from tests.helpers.api import api_routes

ODD_IDS = [
    "x",
    "a%2Fb",
    "a/b",
    "a/b/c/d/e",
    "%00",
    "%0A",
    "..",
    "%2E%2E",
    "%E2%98%83",
    "%F0%9F%92%A5",
    "'%20OR%201=1--",
    "x" * 5000,
    "%FF",
]

HUGE = "é" * 100_000
ODD_VALUES: list[Any] = [None, True, 0, -1, 1.5, 10**40, "", HUGE, [], {}, [HUGE], {"k": HUGE}]

# A valid body per route, whose fields the test replaces one at a time with odd values.
VALID: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/events"): {
        "id": "robust-1",
        "customer_id": "robust-nobody",
        "name": "x.y",
        "at": "2026-01-05T10:00:00Z",
        "properties": {"a": 1},
    },
    ("PUT", "/api/customers/"): {
        "name": "Robust",
        "timezone": "UTC",
        "health_score": 50,
        "renewal_date": "2027-01-01",
        "owner": "o@x.example",
        "attributes": {},
        "tags": [],
        "contacts": [{"email": "r@x.example"}],
    },
    ("PUT", "/api/team/"): {"name": "R", "roles": [], "is_admin": False, "password": "12345678"},
    ("POST", "/complete"): {"outcome": "held", "note": "n"},
    ("POST", "/reassign"): {"assignee": "a@b.example"},
    ("POST", "/api/enrollments"): {"playbook": "probe_open", "customer_id": "robust-nobody"},
    ("POST", "/skip"): {"step": "done", "reason": "r"},
    ("POST", "/cancel"): {"reason": "r"},
    ("POST", "/api/tokens"): {"name": "robust", "scopes": ["ingest"], "expires": "1d"},
}


def valid_body(method: str, path: str) -> dict[str, Any] | None:
    for (m, fragment), body in VALID.items():
        if m == method and fragment in path:
            return body
    return None


def assert_no_500(response: httpx.Response, what: Any) -> None:
    assert response.status_code < 500, (what, response.status_code, response.text[:300])


async def test_odd_ids_in_every_path(api: httpx.AsyncClient, app: Any) -> None:
    for (method, template), odd in itertools.product(api_routes(app), ODD_IDS):
        if "some-id" not in template:
            continue
        path = template.replace("some-id", odd)
        body = valid_body(method, template) or {}
        response = await api.request(method, path, json=body)
        assert_no_500(response, (method, path[:80]))


async def test_odd_values_in_every_field(api: httpx.AsyncClient, app: Any) -> None:
    for method, template in api_routes(app):
        body = valid_body(method, template)
        if body is None:
            continue
        path = template.replace("some-id", "robust-id")
        if "/team/" in template:
            path = template.replace("some-id", "robust@x.example")
        for field, odd in itertools.product(body, ODD_VALUES):
            response = await api.request(method, path, json=body | {field: odd})
            assert_no_500(response, (method, path, field, repr(odd)[:40]))


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"null",
        b"[]",
        b'"just a string"',
        b"[" * 5000 + b"]" * 5000,
        b'{"properties": ' + b'{"a": ' * 3000 + b"1" + b"}" * 3001,
        b'{"id": "n", "customer_id": "c", "name": "x", "properties": {"v": NaN}}',
        b'{"id": "i", "customer_id": "c", "name": "x", "properties": {"v": Infinity}}',
        b'{"id": "\\ud800", "customer_id": "c", "name": "x"}',
        "\ufeff{}".encode(),
        b"\xff\xfe",
    ],
)
async def test_odd_raw_bodies(api: httpx.AsyncClient, app: Any, raw: bytes) -> None:
    for method, template in api_routes(app):
        if method == "GET":
            continue
        path = template.replace("some-id", "robust@x.example")
        response = await api.request(
            method, path, content=raw, headers={"Content-Type": "application/json"}
        )
        assert_no_500(response, (method, path, raw[:30]))


async def test_odd_query_parameters(api: httpx.AsyncClient) -> None:
    for path in ("/api/tasks", "/api/enrollments"):
        for params in (
            {"limit": "1e9"},
            {"limit": str(10**30)},
            {"status": HUGE[:2000]},
            {"assignee": HUGE[:2000], "customer": HUGE[:2000], "playbook": HUGE[:2000]},
            {"status": "\u0000"},
        ):
            response = await api.get(path, params=params)
            assert_no_500(response, (path, json.dumps(params)[:60]))


async def test_wrong_content_types(api: httpx.AsyncClient) -> None:
    for headers, content in (
        ({"Content-Type": "text/plain"}, b'{"id": "1"}'),
        ({"Content-Type": "application/x-www-form-urlencoded"}, b"id=1&customer_id=c"),
        ({"Content-Type": "multipart/form-data; boundary=x"}, b"--x--"),
    ):
        response = await api.post("/api/events", content=content, headers=headers)
        assert_no_500(response, headers)


async def test_a_422_names_the_field_even_when_the_input_cannot_be_echoed(
    api: httpx.AsyncClient,
) -> None:
    raw = b'{"id": "i", "customer_id": "c", "name": "x", "properties": {"v": NaN}}'
    response = await api.post(
        "/api/events", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert any(e["loc"][-1] == "properties" for e in response.json()["detail"])
    raw = b'{"name": "n", "\\udcff": 1}'
    response = await api.put(
        "/api/customers/robust", content=raw, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["input"] == "(not shown: not valid JSON)"
