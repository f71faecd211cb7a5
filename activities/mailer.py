"""Email providers: SendGrid (the real client) when an API key is set, capture otherwise.

A provider either accepts a message (and returns its id), or says why not in a way the
caller can act on: `ProviderRetryable` (429, 5xx, or the request could not be delivered:
nothing was accepted, try again, maybe after a delay), `ProviderRejected` (other 4xx:
retrying won't help; SendGrid's own message is kept for the outbox) or `ProviderUnconfirmed`
(the whole request went out but no answer came back, e.g. the client timed out: SendGrid may
have accepted it, so sending again could email the contact twice).
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
from dataclasses import dataclass, field
from typing import Any, Protocol

import sendgrid
from python_http_client import exceptions as http_errors

from engine.errors import ProviderRejected, ProviderRetryable, ProviderUnconfirmed


@dataclass
class OutgoingEmail:
    """One rendered email for one recipient."""

    to_email: str
    to_name: str | None
    from_email: str
    from_name: str | None
    subject: str
    html: str
    text: str
    reply_to: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    custom_args: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)


class Mailer(Protocol):
    name: str

    def send(self, email: OutgoingEmail) -> str | None:
        """Hand the email over; return the provider's message id (None when captured)."""
        ...


class CaptureMailer:
    """No provider configured: emails stay in the outbox with status 'captured'."""

    name = "capture"

    def send(self, email: OutgoingEmail) -> str | None:
        return None


def mail_send_body(email: OutgoingEmail) -> dict[str, Any]:
    """The v3 Mail Send request body; custom args go on the personalization, as the spec
    types top-level ``custom_args`` as a string."""
    to: dict[str, str] = {"email": email.to_email}
    if email.to_name:
        to["name"] = email.to_name
    personalization: dict[str, Any] = {"to": [to]}
    if email.custom_args:
        personalization["custom_args"] = email.custom_args
    sender: dict[str, str] = {"email": email.from_email}
    if email.from_name:
        sender["name"] = email.from_name
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": sender,
        "subject": email.subject,
        "content": [
            {"type": "text/plain", "value": email.text},
            {"type": "text/html", "value": email.html},
        ],
    }
    if email.reply_to:
        body["reply_to"] = {"email": email.reply_to}
    if email.headers:
        body["headers"] = email.headers
    if email.categories:
        body["categories"] = email.categories[:10]
    return body


class SendGridMailer:
    """Sends through SendGrid's v3 Mail Send API with the official ``sendgrid`` client."""

    name = "sendgrid"

    def __init__(
        self, api_key: str, host: str = "https://api.sendgrid.com", timeout_seconds: float = 20.0
    ) -> None:
        self.client = sendgrid.SendGridAPIClient(api_key=api_key, host=host)
        self.client.client.timeout = timeout_seconds

    def send(self, email: OutgoingEmail) -> str | None:
        try:
            response = self.client.client.mail.send.post(request_body=mail_send_body(email))
        except http_errors.TooManyRequestsError as exc:
            raise ProviderRetryable(_sendgrid_message(exc), _reset_delay(exc)) from None
        except http_errors.HTTPError as exc:
            status = getattr(exc, "status_code", 0) or 0
            if status >= 500:
                raise ProviderRetryable(f"SendGrid {status}: {_sendgrid_message(exc)}") from None
            raise ProviderRejected(f"SendGrid {status}: {_sendgrid_message(exc)}") from None
        except urllib.error.URLError as exc:
            # urllib raises URLError only while connecting and sending the request (refused,
            # DNS, TLS, connect timeout): SendGrid never got a whole request, so retrying is
            # safe. (Reliability suite: before, only "refused" and DNS were retried; any other
            # such error left the outbox row 'sending', which the retry then marked
            # 'unconfirmed', so an email nobody received was never sent.)
            raise ProviderRetryable(f"cannot reach SendGrid: {exc.reason}") from None
        except (TimeoutError, ConnectionError, http.client.HTTPException) as exc:
            # Raised while waiting for the answer: the request went out, and SendGrid may have
            # accepted it (the stand-in's hang_next shows it: the message is recorded after the
            # client gave up). Never retried: no duplicate is the promise.
            what = (
                f"no answer within {self.client.client.timeout:g} s"
                if isinstance(exc, TimeoutError)
                else f"the connection dropped before the answer ({type(exc).__name__}: {exc})"
            )
            raise ProviderUnconfirmed(
                f"SendGrid got the request but gave {what}; it may have accepted the email"
            ) from None
        headers = {k.lower(): v for k, v in dict(response.headers or {}).items()}
        return headers.get("x-message-id")


def _sendgrid_message(exc: Any) -> str:
    try:
        data = json.loads(exc.body or b"{}")
        messages = [e.get("message", "") for e in data.get("errors", [])]
        fields = [e.get("field") for e in data.get("errors", []) if e.get("field")]
        text = "; ".join(m for m in messages if m) or str(exc)
        return f"{text} (field: {', '.join(fields)})" if fields else text
    except (ValueError, AttributeError, TypeError):
        return str(exc)


def _reset_delay(exc: Any) -> float | None:
    headers = {k.lower(): v for k, v in dict(getattr(exc, "headers", None) or {}).items()}
    reset = headers.get("x-ratelimit-reset")
    try:
        return max(1.0, float(reset) - time.time()) if reset else None
    except ValueError:
        return None


def mailer_from_settings(api_key: str | None, host: str) -> Mailer:
    """SendGrid when a key is configured, otherwise capture (never drop)."""
    return SendGridMailer(api_key, host) if api_key else CaptureMailer()
