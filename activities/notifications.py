"""Notifications sent at most once: one `Notification` row per idempotency key.

`deliver` writes the row before calling the receiver, so a retry (of an activity or of the
digest run) finds it: already sent or captured, it is not sent again; failed, it is tried
again and its attempts counted. The `notify` activity runs a playbook's `notify` and
`webhook` steps through it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.base import StoreActivities, require_customer
from activities.heartbeat import heartbeating
from activities.notifier import CaptureNotifier, Notifier
from engine.errors import ErrorType, ProviderRejected, ProviderRetryable, TemplateRenderError
from engine.language.templates import render_text
from engine.messages import ActivityName, NotifyInput, NotifyResult
from engine.store.context import customer_snapshot, evaluation_context
from engine.store.models import Notification, utcnow

DONE = ("sent", "captured")


def deliver(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    *,
    key: str,
    channel: str,
    event: str,
    url: str | None,
    payload: dict[str, Any],
    task_id: str | None = None,
    recipient: str | None = None,
) -> str:
    """Send once per ``key``; returns the status ('sent', 'captured', 'rejected').

    Raises `ProviderRetryable` when the receiver may take it later (the row says 'failed').
    """
    with sessions.begin() as session:
        row = session.scalar(select(Notification).where(Notification.idempotency_key == key))
        if row is None:
            row = Notification(
                idempotency_key=key,
                channel=channel,
                event=event,
                task_id=task_id,
                recipient=recipient,
                payload=payload,
                status="pending",
                attempts=0,
            )
            session.add(row)
        if row.status in DONE or row.status == "rejected":
            return row.status
        row.attempts += 1
    status, reason = "sent", None
    try:
        if url is None or isinstance(notifier, CaptureNotifier):
            status = "captured"
        else:
            notifier.post(url, payload, key)
    except ProviderRejected as exc:
        status, reason = "rejected", str(exc)
    except ProviderRetryable as exc:
        _mark(sessions, key, "failed", str(exc))
        raise
    _mark(sessions, key, status, reason)
    return status


def _mark(sessions: sessionmaker[Session], key: str, status: str, reason: str | None) -> None:
    with sessions.begin() as session:
        row = session.scalar(select(Notification).where(Notification.idempotency_key == key))
        assert row is not None
        row.status, row.reason = status, reason
        if status in DONE:
            row.delivered_at = utcnow()


class NotifyActivities(StoreActivities):
    """The `notify` and `webhook` steps: a rendered message or JSON body, sent once."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        notifier: Notifier | None = None,
        endpoints: dict[str, str] | None = None,
    ) -> None:
        super().__init__(sessions)
        self.notifier: Notifier = notifier or CaptureNotifier()
        self.endpoints = endpoints or {}

    @activity.defn(name=ActivityName.NOTIFY)
    @heartbeating
    def notify(self, input: NotifyInput) -> NotifyResult:
        """Render the step's text or body over the customer's data, then deliver it once."""
        enrollment = input.enrollment_key or input.enrollment_id
        key = f"{enrollment}:{input.step_id}:{input.iteration}"
        with self.sessions() as session:
            customer = require_customer(session, input.customer_id)
            context = evaluation_context(
                customer_snapshot(session, customer, input.now.date()),
                input.now,
                input.playbook,
                input.event,
            )
        try:
            payload = _render(input.body, context)
        except TemplateRenderError as exc:
            raise ApplicationError(
                f"cannot render: {exc}", type=ErrorType.INVALID_INPUT, non_retryable=True
            ) from None
        url = self.endpoints.get(input.endpoint)
        try:
            status = deliver(
                self.sessions,
                self.notifier,
                key=key,
                channel=input.channel,
                event="step",
                url=url,
                payload=payload,
                recipient=input.endpoint,
            )
        except ProviderRetryable as exc:
            raise ApplicationError(str(exc), type=ErrorType.PROVIDER_RETRYABLE) from None
        return NotifyResult(status=status, endpoint=input.endpoint, configured=url is not None)


def _render(value: Any, context: dict[str, Any]) -> Any:
    """Every string in a JSON-like value rendered as a template; other values as they are."""
    if isinstance(value, str):
        return render_text(value, context)
    if isinstance(value, dict):
        return {k: _render(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [_render(v, context) for v in value]
    return value
