"""The SendGrid Event Webhook with real ECDSA signatures (a P-256 key pair made per session).

Refused: forged (another key), stale, from the future, tampered, re-serialised, unsigned,
and anything at all while no key is configured. Accepted: SendGrid's own bytes, once per
event; bounces suppress the next email, opens reach the waiting enrollment.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from engine.client.routing import EventRouter
from engine.messages import EnrollmentResult
from engine.services import Services
from engine.store import repository
from engine.store.models import (
    EmailEngagement,
    EngagementEvent,
    Event,
    OutboxMessage,
    Suppression,
)
from tests.helpers.api import admin_of, outbox_rows, seed, sign_webhook
from tests.helpers.paths import REPO
from tests.helpers.polling import eventually

SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def sg_event(kind: str, email: str, **fields: Any) -> dict[str, Any]:
    """One event as SendGrid posts it (custom args appear as top-level keys)."""
    return {
        "email": email,
        "timestamp": int(time.time()),
        "event": kind,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{uuid.uuid4().hex[:22]}.filterdrecv-5645d9c87f-abcde-1-0",
        "smtp-id": f"<{uuid.uuid4().hex}@example.com>",
        **fields,
    }


def compact(events: list[dict[str, Any]]) -> bytes:
    """SendGrid's serialisation: compact JSON, one line (the exact bytes are signed)."""
    return json.dumps(events, separators=(",", ":")).encode()


async def post(
    client: httpx.AsyncClient,
    key: ec.EllipticCurvePrivateKey,
    body: bytes,
    *,
    timestamp: int | None = None,
    sent_body: bytes | None = None,
) -> httpx.Response:
    """Sign ``body`` as SendGrid does and post ``sent_body`` (default: the same bytes)."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return await client.post(
        "/webhooks/sendgrid",
        content=body if sent_body is None else sent_body,
        headers={
            "Content-Type": "application/json",
            SIGNATURE: sign_webhook(key, stamp, body),
            TIMESTAMP: stamp,
        },
    )


def suppression(services: Services, email: str) -> Suppression | None:
    with services.sessions() as session:
        return session.get(Suppression, email)


# -- signatures ----------------------------------------------------------------------------
async def test_a_validly_signed_batch_is_accepted(
    anon: httpx.AsyncClient, webhook_key: ec.EllipticCurvePrivateKey
) -> None:
    events = [sg_event("processed", "x@example.com"), sg_event("delivered", "x@example.com")]
    response = await post(anon, webhook_key, compact(events))
    assert response.status_code == 200, response.text
    summary = response.json()
    assert summary["received"] == 2
    assert summary["processed"] == 2
    assert summary["ignored"] == 1  # processed: no effect here
    assert summary["unmatched"] == 1  # delivered, for an email we did not send


async def test_a_signature_from_another_key_is_refused(
    anon: httpx.AsyncClient, services: Services
) -> None:
    forger = ec.generate_private_key(ec.SECP256R1())
    email = f"forged-{uuid.uuid4().hex[:6]}@example.com"
    response = await post(anon, forger, compact([sg_event("bounce", email, reason="550")]))
    assert response.status_code == 403
    assert "signature" in response.json()["detail"]
    assert suppression(services, email) is None


@pytest.mark.parametrize("offset", [-600, 600, -301])
async def test_a_stale_or_future_timestamp_is_refused_even_when_signed(
    anon: httpx.AsyncClient,
    webhook_key: ec.EllipticCurvePrivateKey,
    services: Services,
    offset: int,
) -> None:
    email = f"replay-{uuid.uuid4().hex[:6]}@example.com"
    body = compact([sg_event("spamreport", email)])
    response = await post(anon, webhook_key, body, timestamp=int(time.time()) + offset)
    assert response.status_code == 403
    assert "5 minutes" in response.json()["detail"]
    assert suppression(services, email) is None


async def test_a_body_changed_after_signing_is_refused(
    anon: httpx.AsyncClient, webhook_key: ec.EllipticCurvePrivateKey, services: Services
) -> None:
    honest = f"honest-{uuid.uuid4().hex[:6]}@example.com"
    victim = f"victim-{uuid.uuid4().hex[:6]}@example.com"
    signed = compact([sg_event("delivered", honest)])
    tampered = signed.replace(honest.encode(), victim.encode()).replace(
        b'"delivered"', b'"unsubscribe"'
    )
    response = await post(anon, webhook_key, signed, sent_body=tampered)
    assert response.status_code == 403
    assert suppression(services, victim) is None


async def test_the_same_json_re_serialised_is_refused(
    anon: httpx.AsyncClient, webhook_key: ec.EllipticCurvePrivateKey
) -> None:
    """The signature covers SendGrid's bytes, not the JSON value they encode."""
    signed = compact([sg_event("delivered", "x@example.com")])
    redumped = json.dumps(json.loads(signed), indent=2).encode()
    assert json.loads(redumped) == json.loads(signed)
    response = await post(anon, webhook_key, signed, sent_body=redumped)
    assert response.status_code == 403


async def test_unsigned_requests_and_garbage_signatures_are_refused(
    anon: httpx.AsyncClient,
) -> None:
    body = compact([sg_event("delivered", "x@example.com")])
    bare = await anon.post("/webhooks/sendgrid", content=body)
    assert bare.status_code == 401
    assert SIGNATURE in bare.json()["detail"]
    stamp = str(int(time.time()))
    for signature, timestamp in (
        ("not base64 !!", stamp),
        ("", stamp),
        ("AAAA", stamp),
        ("MEUCIQ==", stamp),
        ("MEUCIQ==", "yesterday"),
        ("MEUCIQ==", "9" * 40),
    ):
        response = await anon.post(
            "/webhooks/sendgrid",
            content=body,
            headers={SIGNATURE: signature, TIMESTAMP: timestamp},
        )
        assert response.status_code in (401, 403), (signature, timestamp, response.text)


async def test_without_a_configured_key_every_request_is_refused_and_it_says_why(
    anon: httpx.AsyncClient,
    webhook_key: ec.EllipticCurvePrivateKey,
    services: Services,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    body = compact([sg_event("delivered", "x@example.com")])
    monkeypatch.setattr(services.settings, "sendgrid_webhook_public_key", None)
    response = await post(anon, webhook_key, body)
    assert response.status_code == 403
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["detail"]
    assert "not configured" in response.json()["detail"]
    monkeypatch.setattr(services.settings, "sendgrid_webhook_public_key", "bm90IGEga2V5")
    response = await post(anon, webhook_key, body)
    assert response.status_code == 403
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["detail"]
    # ... and the deployment guide says so.
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    [row] = [line for line in deploy.splitlines() if line.startswith("| `SENDGRID_WEBHOOK_PUB")]
    assert re.findall(r"answers (\d{3})", row) == ["403"], row


async def test_signed_but_malformed_bodies_are_400(
    anon: httpx.AsyncClient, webhook_key: ec.EllipticCurvePrivateKey
) -> None:
    for body in (b"[{", b'{"event": "delivered"}', b"", "[\u00e9]".encode()):
        response = await post(anon, webhook_key, body)
        assert response.status_code == 400, (body, response.text)
    # items that are not events are counted and skipped, the rest is applied
    response = await post(anon, webhook_key, b'[1, "x", null, {"no": "event"}, {"event": 5}]')
    assert response.status_code == 200
    assert response.json()["invalid"] == 5


# -- effects -------------------------------------------------------------------------------
async def enroll(api: httpx.AsyncClient, playbook: str, customer: str) -> str:
    response = await api.post(
        "/api/enrollments", json={"playbook": playbook, "customer_id": customer}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def sent(services: Services, enrollment_id: str, count: int = 1) -> list[OutboxMessage]:
    """The enrollment's outbox rows once ``count`` of them were accepted by SendGrid."""

    def check() -> list[OutboxMessage] | None:
        rows = outbox_rows(services, enrollment_id)
        done = [r for r in rows if r.status != "pending" and r.status != "sending"]
        return rows if len(done) >= count else None

    return await eventually(check)


async def test_a_bounce_suppresses_the_contact_and_the_next_email_is_suppressed(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    webhook_key: ec.EllipticCurvePrivateKey,
    services: Services,
    sendgrid_api: Any,
    customer: str,
) -> None:
    enrollment = await enroll(api, "probe_twice", customer)
    [first] = await sent(services, enrollment)
    assert first.status == "sent" and first.provider_message_id
    address = admin_of(customer)

    # delivered, found by the message id SendGrid reports (X-Message-Id + ".filter...")
    delivered = sg_event(
        "delivered", address, sg_message_id=f"{first.provider_message_id}.filterdrecv-1"
    )
    bounce = sg_event(
        "bounce",
        address,
        outbox_key=first.idempotency_key,
        enrollment_id=enrollment,
        step_id="first",
        type="bounce",
        reason="550 5.1.1 The email account that you tried to reach does not exist",
        status="5.1.1",
    )
    batch = compact([delivered, bounce])
    response = await post(anon, webhook_key, batch)
    assert response.status_code == 200, response.text
    assert response.json() | {"received": 2, "processed": 2, "suppressed": 1} == response.json()

    [row] = outbox_rows(services, enrollment)
    assert row.status == "bounced"
    assert "does not exist" in (row.reason or "")
    stored = suppression(services, address)
    assert stored is not None and stored.source == "sendgrid bounce"
    with services.sessions() as session:
        contacts = {c.email: c for c in repository.get_customer(session, customer).contacts}
    assert contacts[address].unsubscribed

    # SendGrid delivers the same batch again: nothing happens twice
    again = await post(anon, webhook_key, batch)
    assert again.status_code == 200
    assert again.json()["duplicates"] == 2 and again.json()["processed"] == 0

    go = await api.post(
        "/api/events",
        json={"id": uuid.uuid4().hex, "customer_id": customer, "name": "probe.go"},
    )
    assert go.status_code == 202 and go.json()["results"][0]["signalled"] == [enrollment]
    rows = await sent(services, enrollment, count=2)
    assert [r.step_id for r in rows] == ["first", "second"]
    assert rows[1].status == "suppressed"
    assert len(sendgrid_api.messages_for("enrollment_id", enrollment)) == 1


async def test_an_open_reaches_the_waiting_enrollment_once(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    webhook_key: ec.EllipticCurvePrivateKey,
    services: Services,
    customer: str,
) -> None:
    enrollment = await enroll(api, "probe_open", customer)
    [row] = await sent(services, enrollment)
    address = admin_of(customer)
    common = {"outbox_key": row.idempotency_key, "enrollment_id": enrollment, "step_id": "hello"}
    click = sg_event("click", address, url="https://example.com/docs?a=1", **common)
    opened = sg_event("open", address, **common)
    late = sg_event("delivered", address, **common)
    response = await post(anon, webhook_key, compact([click, opened, late]))
    assert response.status_code == 200, response.text
    assert response.json()["routed"] == 2

    # the enrollment waited for email.opened and ends with it
    handle = services.client.get_workflow_handle(enrollment, result_type=EnrollmentResult)
    result = await asyncio.wait_for(handle.result(), 15)
    assert result.outcome == "opened"
    # the most telling status wins: the late 'delivered' does not undo the click
    assert outbox_rows(services, enrollment)[0].status == "clicked"
    with services.sessions() as session:
        stored = {
            e.name: e for e in session.scalars(select(Event).where(Event.customer_id == customer))
        }
    assert stored["email.opened"].id == f"sg:{opened['sg_event_id']}"
    assert stored["email.opened"].properties["step"] == "hello"
    assert stored["email.clicked"].properties["url"] == "https://example.com/docs?a=1"
    assert stored["email.clicked"].properties["playbook"] == "probe_open"

    again = await post(anon, webhook_key, compact([opened]))
    assert again.json()["duplicates"] == 1 and again.json()["routed"] == 0

    # Engagement is kept per outbox row, once per sg_event_id, and the roll-up keeps the
    # earliest time of each kind whatever order the events arrive in (insight reports).
    earlier_open = sg_event("open", address, **common)
    earlier_open["timestamp"] = opened["timestamp"] - 60
    late["timestamp"] = opened["timestamp"] - 90  # delivered came first, arrived last
    late["sg_event_id"] = uuid.uuid4().hex
    await post(anon, webhook_key, compact([earlier_open, late, earlier_open]))
    with services.sessions() as session:
        kept = session.scalars(
            select(EngagementEvent).where(EngagementEvent.outbox_id == row.id)
        ).all()
        rollup = session.get(EmailEngagement, row.id)
    assert sorted(e.kind for e in kept) == ["click", "delivered", "delivered", "open", "open"]
    assert rollup is not None and (rollup.opens, rollup.clicks) == (2, 1)
    assert rollup.opened_at == datetime.fromtimestamp(earlier_open["timestamp"], UTC)
    assert rollup.delivered_at == datetime.fromtimestamp(late["timestamp"], UTC)
    assert rollup.clicked_at == datetime.fromtimestamp(click["timestamp"], UTC)


@pytest.mark.parametrize(
    ("kind", "fields", "suppressed"),
    [
        ("spamreport", {}, True),
        ("unsubscribe", {}, True),
        ("group_unsubscribe", {"asm_group_id": 7}, True),
        ("dropped", {"reason": "Bounced Address", "status": "5.0.0"}, True),
        ("dropped", {"reason": "Invalid SMTPAPI header"}, False),
        ("bounce", {"type": "blocked", "reason": "IP address blocked"}, False),
        ("deferred", {"response": "400 try again later", "attempt": "1"}, False),
        ("delivered", {}, False),
    ],
)
async def test_which_events_suppress_the_address(
    anon: httpx.AsyncClient,
    webhook_key: ec.EllipticCurvePrivateKey,
    services: Services,
    kind: str,
    fields: dict[str, Any],
    suppressed: bool,
) -> None:
    customer = seed(services, f"cust-{uuid.uuid4().hex[:10]}")
    address = admin_of(customer)
    response = await post(anon, webhook_key, compact([sg_event(kind, address.upper(), **fields)]))
    assert response.status_code == 200, response.text
    assert (suppression(services, address) is not None) is suppressed
    with services.sessions() as session:
        contact = next(
            c for c in repository.get_customer(session, customer).contacts if c.email == address
        )
    assert contact.unsubscribed is suppressed


async def test_an_event_that_could_not_be_routed_is_503_and_applied_on_redelivery(
    api: httpx.AsyncClient,
    anon: httpx.AsyncClient,
    webhook_key: ec.EllipticCurvePrivateKey,
    services: Services,
    customer: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    enrollment = await enroll(api, "probe_open", customer)
    [row] = await sent(services, enrollment)
    opened = sg_event("open", admin_of(customer), outbox_key=row.idempotency_key)
    body = compact([opened])

    async def unavailable(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(EventRouter, "handle", unavailable)
        failed = await post(anon, webhook_key, body)
    assert failed.status_code == 503
    assert failed.json()["errors"] == 1 and failed.json()["routed"] == 0

    retried = await post(anon, webhook_key, body)  # SendGrid retries the batch
    assert retried.status_code == 200, retried.text
    assert retried.json()["routed"] == 1 and retried.json()["duplicates"] == 0
    handle = services.client.get_workflow_handle(enrollment, result_type=EnrollmentResult)
    assert (await asyncio.wait_for(handle.result(), 15)).outcome == "opened"
