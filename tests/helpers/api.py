"""Helpers of the API tests: probe playbooks, seeding, SendGrid-style webhook signing."""

from __future__ import annotations

import base64
import re
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import select

from engine.scopes import Scope
from engine.services import Services
from engine.store import repository
from engine.store.models import OutboxMessage

try:  # FastAPI >= 0.160 keeps included routers as one route each; this flattens them
    from fastapi.routing import iter_route_contexts
except ImportError:  # pragma: no cover - older FastAPI has flat app.routes
    iter_route_contexts = None

# Small playbooks that email at once (no send window) and then wait, so webhook effects on
# a running enrollment can be observed on the real dev server in real time.
PROBES = {
    "probe_open": """\
playbook: probe_open
name: Email, then wait for it to be opened
trigger: {manual: true}
steps:
  - id: hello
    email:
      to: contact.role == "admin"
      subject: "Hello {{ contact.first_name }}"
      body: '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
      send_window: anytime
  - id: await_open
    wait_for: {event: email.opened, timeout: 30d}
  - id: done
    end: {outcome: opened}
""",
    "probe_twice": """\
playbook: probe_twice
name: Email, wait for a go-ahead, email again
trigger: {manual: true}
steps:
  - id: first
    email:
      to: contact.role == "admin"
      subject: "First for {{ contact.first_name }}"
      body: '<p>One</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
      send_window: anytime
  - id: await_go
    wait_for: {event: probe.go, timeout: 30d}
  - id: second
    email:
      to: contact.role == "admin"
      subject: "Second for {{ contact.first_name }}"
      body: '<p>Two</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'
      send_window: anytime
  - id: done
    end: {outcome: emailed}
""",
}


# The scopes that open each /api route, besides `admin`, which opens every one (an empty set:
# admin only). Shared by the route-by-route test and the per-scope API fuzzing; a route
# missing here fails both, which makes its author decide.
ROUTE_SCOPES: dict[tuple[str, str], frozenset[Scope]] = {
    ("POST", "/api/events"): frozenset({Scope.INGEST}),
    ("PUT", "/api/customers/{customer_id}"): frozenset({Scope.INGEST}),
    ("GET", "/api/customers/{customer_id}"): frozenset({Scope.INGEST, Scope.OPERATE}),
    ("PUT", "/api/team/{email}"): frozenset(),
    ("POST", "/api/team/{email}/disable"): frozenset(),
    ("POST", "/api/team/{email}/enable"): frozenset(),
    ("POST", "/api/team/{email}/unlock"): frozenset(),
    ("DELETE", "/api/team/{email}"): frozenset(),
    ("PUT", "/api/team/{email}/calendar"): frozenset(),
    ("GET", "/api/team/{email}/calendar"): frozenset({Scope.OPERATE}),
    ("GET", "/api/tasks"): frozenset({Scope.OPERATE}),
    ("POST", "/api/tasks/{task_id}/complete"): frozenset({Scope.OPERATE}),
    ("POST", "/api/tasks/{task_id}/reassign"): frozenset({Scope.OPERATE}),
    ("POST", "/api/tasks/complete"): frozenset({Scope.OPERATE}),
    ("POST", "/api/tasks/{task_id}/undo"): frozenset({Scope.OPERATE}),
    ("POST", "/api/tasks/{task_id}/snooze"): frozenset({Scope.OPERATE}),
    ("GET", "/api/tasks/{task_id}/comments"): frozenset({Scope.OPERATE}),
    ("POST", "/api/tasks/{task_id}/comments"): frozenset({Scope.OPERATE}),
    ("GET", "/api/enrollments"): frozenset({Scope.OPERATE}),
    ("POST", "/api/enrollments"): frozenset({Scope.OPERATE}),
    ("GET", "/api/enrollments/{enrollment_id}/status"): frozenset({Scope.OPERATE}),
    ("POST", "/api/enrollments/{enrollment_id}/pause"): frozenset({Scope.OPERATE}),
    ("POST", "/api/enrollments/{enrollment_id}/resume"): frozenset({Scope.OPERATE}),
    ("POST", "/api/enrollments/{enrollment_id}/skip"): frozenset({Scope.OPERATE}),
    ("POST", "/api/enrollments/{enrollment_id}/cancel"): frozenset({Scope.OPERATE}),
    ("GET", "/api/reports/{kind}"): frozenset({Scope.OPERATE}),
    ("GET", "/api/reports/{kind}/customers"): frozenset({Scope.OPERATE}),
    ("GET", "/api/tokens"): frozenset(),
    ("POST", "/api/tokens"): frozenset(),
    ("DELETE", "/api/tokens/{token_id}"): frozenset(),
}


def allowed(scope: Scope, method: str, template: str) -> bool:
    """Whether a token holding only ``scope`` may call the route (per `ROUTE_SCOPES`)."""
    return scope == Scope.ADMIN or scope in ROUTE_SCOPES[method, template]


def concrete(template: str) -> str:
    """A route's path with each parameter filled in as ``some-id``."""
    return re.sub(r"\{[^}]+\}", "some-id", template)


def public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    """The public key as SendGrid shows it: base64 of the DER SubjectPublicKeyInfo."""
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")


def sign_webhook(key: ec.EllipticCurvePrivateKey, timestamp: str, payload: bytes) -> str:
    """What SendGrid sends in X-Twilio-Email-Event-Webhook-Signature: base64 DER ECDSA
    (SHA-256) over the timestamp followed by the exact body bytes."""
    return base64.b64encode(
        key.sign(timestamp.encode("ascii") + payload, ec.ECDSA(hashes.SHA256()))
    ).decode("ascii")


def admin_of(customer_id: str) -> str:
    """The admin contact's address; unique per customer, as suppression is per address."""
    return f"ada.{customer_id}@acme.example"


def champion_of(customer_id: str) -> str:
    return f"carl.{customer_id}@acme.example"


def seed(services: Services, customer_id: str, **fields: Any) -> str:
    """A customer with an admin and a champion contact; returns its id."""
    contacts = [
        repository.ContactData(email=admin_of(customer_id), first_name="Ada", role="admin"),
        repository.ContactData(email=champion_of(customer_id), first_name="Carl", role="champion"),
    ]
    data: dict[str, Any] = {
        "id": customer_id,
        "name": f"Customer {customer_id}",
        "segment": "smb",
        "timezone": "Europe/Berlin",
        "contacts": contacts,
    }
    data.update(fields)
    with services.sessions.begin() as session:
        repository.upsert_customer(session, repository.CustomerData(**data))
    return customer_id


def outbox_rows(services: Services, enrollment_id: str) -> list[OutboxMessage]:
    with services.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.enrollment_id == enrollment_id)
                .order_by(OutboxMessage.id)
            )
        )


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, concrete path) of every /api route, path parameters filled in."""
    routes = list(iter_route_contexts(app.routes)) if iter_route_contexts else app.routes
    found = []
    for route in routes:
        original = getattr(route, "original_route", route)
        path = getattr(route, "path", None) or ""
        if not isinstance(original, APIRoute) or not path.startswith("/api"):
            continue
        found += [(method, concrete(path)) for method in sorted(route.methods or ())]
    return found
