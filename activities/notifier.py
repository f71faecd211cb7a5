"""Outbound notifications: Slack incoming webhooks and generic signed webhooks, or capture.

`HttpNotifier` POSTs a JSON body with an `Idempotency-Key` header (the receiver can drop a
repeat) and, when a secret is configured, `X-Playbook-Signature: sha256=<hex>`, the
HMAC-SHA256 of the exact body, so the receiver can check it came from us. It says how a
failure may be handled the way the mailer does: `ProviderRetryable` (429, 5xx, no
connection) or `ProviderRejected` (other 4xx). `CaptureNotifier` sends nothing: the
simulator and an unconfigured engine record what would have gone out.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.error
import urllib.request
from typing import Any, Protocol

from engine.errors import ProviderRejected, ProviderRetryable

SIGNATURE_HEADER = "X-Playbook-Signature"
TIMEOUT_SECONDS = 10


class Notifier(Protocol):
    name: str

    def post(self, url: str, payload: dict[str, Any], key: str) -> None:
        """Deliver ``payload`` to ``url`` once (``key`` identifies it), or raise why not."""
        ...


class CaptureNotifier:
    """Nothing configured, or a simulation: notifications are recorded as 'captured'."""

    name = "capture"

    def post(self, url: str, payload: dict[str, Any], key: str) -> None:
        return None


def body_bytes(payload: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed): compact, sorted JSON."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()


def signature(secret: bytes, body: bytes) -> str:
    """The `X-Playbook-Signature` value of ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


class HttpNotifier:
    """POSTs JSON over HTTP(S), signed with ``secret`` when one is given."""

    name = "http"

    def __init__(self, secret: bytes | None = None, timeout: float = TIMEOUT_SECONDS) -> None:
        self.secret = secret
        self.timeout = timeout

    def post(self, url: str, payload: dict[str, Any], key: str) -> None:
        body = body_bytes(payload)
        headers = {"Content-Type": "application/json", "Idempotency-Key": key}
        if self.secret:
            headers[SIGNATURE_HEADER] = signature(self.secret, body)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise ProviderRetryable(f"{url} answered {exc.code}") from None
            raise ProviderRejected(f"{url} answered {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
            raise ProviderRetryable(f"{url} unreachable: {exc}") from None
