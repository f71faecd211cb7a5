"""``POST /webhooks/sendgrid``: SendGrid's Event Webhook, signature-checked.

SendGrid signs ``timestamp + body`` with ECDSA (P-256, SHA-256) and sends the signature and
timestamp in the ``X-Twilio-Email-Event-Webhook-Signature`` / ``-Timestamp`` headers; the
public key is shown under Settings > Mail Settings > Event Webhook and configured here as
``SENDGRID_WEBHOOK_PUBLIC_KEY``. A request is refused (nothing is read from it) when:

- no key is configured, or the configured key cannot be loaded: 403, with a message that
  says so (events are not accepted unverified);
- the signature headers are missing: 401;
- the signature does not match the exact bytes received (forged, tampered, re-serialised),
  or the timestamp is more than 5 minutes away from now (a replay): 403.

Then each event of the batch is applied once (by ``sg_event_id``; SendGrid redelivers):

- the outbox row of the email (custom arg ``outbox_key``, else the ``sg_message_id``,
  whose prefix is the ``X-Message-Id`` the send returned) takes the event's status, unless
  it already holds a more final one (a late ``delivered`` does not undo a ``clicked``);
- bounces (not blocks), drops for a bounced / invalid / unsubscribed / spam-reporting
  address, spam reports and unsubscribes suppress the address for good;
- delivered, open, click, bounce, spam report and unsubscribe events are kept per outbox
  row, with the first time of each kind (``engine.store.insight``, read by the reports);
- opens and clicks reach the customer's enrollments as ``email.opened`` / ``email.clicked``
  events (id ``sg:<sg_event_id>``) with the step, playbook and clicked URL.

The answer is 200 with counts. If an event could not be applied for a transient reason
(database or Temporal unavailable) the answer is 503, so SendGrid delivers the batch again;
the events already applied are then skipped as duplicates.
"""

from __future__ import annotations

import binascii
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from fastapi import APIRouter, Header, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from engine.errors import StoreError
from engine.services import Services
from engine.statuses import OutboxStatus
from engine.store import insight, repository
from engine.store.models import OutboxMessage, WebhookEvent

log = logging.getLogger(__name__)
router = APIRouter(tags=["webhooks"])

MAX_SKEW_SECONDS = 5 * 60

# SendGrid event -> outbox status.
STATUS = {
    "deferred": OutboxStatus.DEFERRED,
    "delivered": OutboxStatus.DELIVERED,
    "open": OutboxStatus.OPENED,
    "click": OutboxStatus.CLICKED,
    "bounce": OutboxStatus.BOUNCED,
    "dropped": OutboxStatus.DROPPED,
    "spamreport": OutboxStatus.SPAM_REPORTED,
    "unsubscribe": OutboxStatus.UNSUBSCRIBED,
    "group_unsubscribe": OutboxStatus.UNSUBSCRIBED,
}
# How final a status is: an event never moves a row to a less final one (events arrive
# out of order, in separate batches). Our own statuses (sent, unconfirmed...) rank 0.
RANK: dict[str, int] = {
    OutboxStatus.DEFERRED: 1,
    OutboxStatus.DELIVERED: 2,
    OutboxStatus.OPENED: 3,
    OutboxStatus.CLICKED: 4,
    OutboxStatus.BOUNCED: 5,
    OutboxStatus.DROPPED: 5,
    OutboxStatus.SPAM_REPORTED: 6,
    OutboxStatus.UNSUBSCRIBED: 6,
}
WITH_REASON = {OutboxStatus.DEFERRED, OutboxStatus.BOUNCED, OutboxStatus.DROPPED}
ROUTED = {"open": "email.opened", "click": "email.clicked"}
# Drop reasons (SendGrid's wording) that say the address itself must not be mailed again;
# others ("Invalid SMTPAPI header", "Spam Content", quota...) are about the message.
SUPPRESSING_DROPS = ("bounced address", "unsubscribed address", "spam reporting address")
INVALID_ADDRESS = ("invalid", "invalid address", "invalid email")


class WebhookSummary(BaseModel):
    """What became of a posted batch."""

    received: int = Field(0, description="Items in the batch.")
    processed: int = Field(0, description="Events applied now.")
    duplicates: int = Field(0, description="Events already applied (redeliveries).")
    unmatched: int = Field(0, description="Events for emails not in the outbox.")
    suppressed: int = Field(0, description="Addresses newly suppressed.")
    routed: int = Field(0, description="Opens and clicks sent on to enrollments.")
    ignored: int = Field(0, description="Event types with no effect here (processed...).")
    invalid: int = Field(0, description="Items that are not usable events (logged).")
    errors: int = Field(0, description="Events not applied for a transient reason (503).")


# -- signature -----------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _public_key(configured: str) -> EllipticCurvePublicKey:
    key = EventWebhook().convert_public_key_to_ecdsa(configured.strip())
    if not isinstance(key, EllipticCurvePublicKey):
        raise ValueError("not an elliptic curve key")
    return key


def verify_request(
    public_key: str | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float | None = None,
) -> None:
    """Raise 401/403 unless SendGrid signed ``timestamp + body`` within the last 5 minutes."""
    if not public_key:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "SendGrid webhook verification is not configured: set SENDGRID_WEBHOOK_PUBLIC_KEY "
            "to the verification key of the Event Webhook (SendGrid: Settings > Mail Settings "
            "> Event Webhook > Signature Verification); events are refused until then",
        )
    if not signature or not timestamp:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            f"signed requests only: the {EventWebhookHeader.SIGNATURE} and "
            f"{EventWebhookHeader.TIMESTAMP} headers are required",
        )
    try:
        key = _public_key(public_key)
    except (ValueError, TypeError) as exc:
        log.error("SENDGRID_WEBHOOK_PUBLIC_KEY cannot be loaded: %s", exc)
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "SendGrid webhook verification is misconfigured: SENDGRID_WEBHOOK_PUBLIC_KEY is "
            "not a base64 ECDSA public key; events are refused until it is fixed",
        ) from None
    if not timestamp.isascii() or not timestamp.isdigit() or len(timestamp) > 12:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "malformed webhook timestamp")
    skew = (time.time() if now is None else now) - int(timestamp)
    if abs(skew) > MAX_SKEW_SECONDS:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            f"webhook timestamp is {abs(int(skew))} s {'old' if skew > 0 else 'in the future'}; "
            f"more than {MAX_SKEW_SECONDS // 60} minutes is refused (replay protection)",
        )
    try:
        valid = EventWebhook().verify_signature(
            body.decode("utf-8"), signature, timestamp, public_key=key
        )
    except (UnicodeDecodeError, binascii.Error, ValueError, TypeError):
        valid = False
    if not valid:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            "webhook signature does not match the body and timestamp (forged or altered)",
        )


# -- applying events -----------------------------------------------------------------------
@dataclass
class Routable:
    """An open or click to pass on to the customer's enrollments once the batch is stored."""

    dedupe_id: str
    event_id: str
    customer_id: str
    name: str
    at: datetime
    properties: dict[str, Any]


@dataclass
class Applied:
    summary: WebhookSummary = field(default_factory=WebhookSummary)
    routable: list[Routable] = field(default_factory=list)


def _dedupe_id(event: dict[str, Any]) -> str:
    """``sendgrid:<sg_event_id>``, or a hash of the event when SendGrid gave no id."""
    given = event.get("sg_event_id")
    if isinstance(given, str) and given and len(given) <= 200:
        return f"sendgrid:{given}"
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), default=str)
    return f"sendgrid-sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def _at(event: dict[str, Any]) -> datetime:
    stamp = event.get("timestamp")
    try:
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            return datetime.fromtimestamp(stamp, UTC)
    except (OverflowError, OSError, ValueError):
        pass
    return datetime.now(UTC)


def _text(event: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = event.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return str(value)[:1000]
    return None


def find_outbox(session: Session, event: dict[str, Any]) -> OutboxMessage | None:
    """The email an event is about: by custom arg ``outbox_key``, else by message id.

    ``sg_message_id`` is the ``X-Message-Id`` returned by the send plus a suffix
    (``<id>.filterdrecv-...``), so its prefixes at dots are tried, longest first.
    """
    key = event.get("outbox_key")
    if isinstance(key, str) and key:
        row = repository.get_outbox(session, key)
        if row is not None:
            return row
    message_id = event.get("sg_message_id")
    if isinstance(message_id, str) and message_id:
        parts = message_id.split(".")[:16]
        for n in range(len(parts), 0, -1):
            row = repository.get_outbox_by_provider_message_id(session, ".".join(parts[:n]))
            if row is not None:
                return row
    return None


def _suppression(kind: str, event: dict[str, Any]) -> tuple[str, str] | None:
    """(reason, source) when this event means the address must not be mailed again."""
    detail = _text(event, "reason", "response", "status")
    if kind == "bounce":
        if str(event.get("type", "")).lower() == "blocked":
            return None  # a block is about the sending IP or content, not the address
        return f"bounced: {detail or 'no reason given'}", "sendgrid bounce"
    if kind == "dropped":
        reason = (detail or "").strip().lower()
        if reason.startswith(SUPPRESSING_DROPS) or reason in INVALID_ADDRESS:
            return f"dropped by SendGrid: {detail}", "sendgrid dropped"
        return None
    if kind == "spamreport":
        return "marked the email as spam", "sendgrid spamreport"
    if kind in ("unsubscribe", "group_unsubscribe"):
        return "unsubscribed at SendGrid", f"sendgrid {kind}"
    return None


def _apply_one(
    session: Session, event: dict[str, Any], summary: WebhookSummary, dedupe: str
) -> Routable | None:
    """Apply one event to the store; return the open or click to route, if any."""
    kind = event["event"]
    row = find_outbox(session, event)
    if row is not None:
        insight.record_engagement(
            session,
            event_id=dedupe,
            outbox_id=row.id,
            sendgrid_event=kind,
            at=_at(event),
            url=_text(event, "url") if kind == "click" else None,
        )
    if kind in STATUS:
        if row is None:
            summary.unmatched += 1
        else:
            new = STATUS[kind]
            if RANK[new] >= RANK.get(row.status, 0):
                repository.update_outbox_status(
                    session,
                    row.idempotency_key,
                    new,
                    reason=_text(event, "reason", "response") if new in WITH_REASON else None,
                )
    else:
        summary.ignored += 1
    why = _suppression(kind, event)
    address = _text(event, "email") or (row.contact_email if row is not None else None)
    if why and address and repository.suppress(session, address, why[0], source=why[1]):
        summary.suppressed += 1
    if kind not in ROUTED or row is None:
        return None
    customer_id = row.customer_id
    if customer_id is None and row.enrollment_id:
        enrollment = repository.latest_enrollment(session, row.enrollment_id)
        customer_id = enrollment.customer_id if enrollment else None
    if not customer_id:
        return None
    properties: dict[str, Any] = {
        "step": row.step_id,
        "playbook": row.playbook_id,
        "enrollment_id": row.enrollment_id,
    }
    if kind == "click":
        properties["url"] = _text(event, "url")
    return Routable(
        dedupe_id=dedupe,
        event_id="sg:" + dedupe.split(":", 1)[1],
        customer_id=customer_id,
        name=ROUTED[kind],
        at=_at(event),
        properties=properties,
    )


def apply_events(sessions: sessionmaker[Session], events: list[Any]) -> Applied:
    """Apply each event once, each in its own transaction (a bad one spoils no other)."""
    applied = Applied(WebhookSummary(received=len(events)))
    summary = applied.summary
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            summary.invalid += 1
            log.warning("SendGrid webhook item is not an event: %.200r", event)
            continue
        dedupe = _dedupe_id(event)
        try:
            with sessions.begin() as session:
                if not repository.record_webhook_event(session, dedupe):
                    summary.duplicates += 1
                    continue
                routable = _apply_one(session, event, summary, dedupe)
            summary.processed += 1
            if routable is not None:  # only once its transaction committed
                applied.routable.append(routable)
        except (ValueError, StoreError) as exc:
            summary.invalid += 1
            log.warning("SendGrid event %s not applied: %s", dedupe, exc)
        except Exception:
            summary.errors += 1
            log.exception("SendGrid event %s not applied; SendGrid will deliver it again", dedupe)
    return applied


def _forget(sessions: sessionmaker[Session], dedupe_id: str) -> None:
    """Let a redelivery apply this event again (its store effects are idempotent)."""
    with sessions.begin() as session:
        row = session.get(WebhookEvent, dedupe_id)
        if row is not None:
            session.delete(row)


def _parse(body: bytes) -> list[Any]:
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "body is not valid JSON") from None
    if not isinstance(data, list):
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, "body must be a JSON array of SendGrid events"
        )
    return data


@router.post(
    "/webhooks/sendgrid",
    response_model=WebhookSummary,
    responses={
        400: {"description": "The body is not a JSON array"},
        401: {"description": "Signature headers missing"},
        403: {"description": "Forged, altered or stale request, or no key configured"},
        413: {"description": "Body over WEBHOOK_MAX_BODY_BYTES (default 8 MiB)"},
        503: {"description": "Some events could not be applied; SendGrid will retry"},
    },
)
async def sendgrid_events(
    request: Request,
    signature: Annotated[str | None, Header(alias=EventWebhookHeader.SIGNATURE)] = None,
    timestamp: Annotated[str | None, Header(alias=EventWebhookHeader.TIMESTAMP)] = None,
) -> Any:
    """SendGrid Event Webhook: delivery, engagement, bounces, spam reports, unsubscribes.

    Needs no API token: the request is authenticated by SendGrid's ECDSA signature.
    """
    svc: Services = request.app.state.services
    body = await request.body()  # capped while it streams (engine.api.limits)
    verify_request(svc.settings.sendgrid_webhook_public_key, body, signature, timestamp)
    events = _parse(body)
    applied = await run_in_threadpool(apply_events, svc.sessions, events)
    summary = applied.summary
    for item in applied.routable:
        try:
            await svc.router.handle(
                item.event_id, item.customer_id, item.name, item.at, item.properties
            )
            summary.routed += 1
        except Exception:
            log.exception(
                "SendGrid %s %s not routed; SendGrid will retry", item.name, item.event_id
            )
            summary.errors += 1
            summary.processed -= 1
            await run_in_threadpool(_forget, svc.sessions, item.dedupe_id)
    if summary.errors:
        return JSONResponse(summary.model_dump(), status_code=status.HTTP_503_SERVICE_UNAVAILABLE)
    return summary
