"""Signed tokens for links we put in emails (unsubscribe), HMAC-SHA256 with the app secret.

A token names exactly one contact of one customer, so it cannot be forged, nor moved to
another contact: changing any byte breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from engine.errors import BadToken


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict[str, Any], secret: str, purpose: str) -> str:
    """``<payload>.<signature>``; ``purpose`` separates token kinds sharing one secret."""
    body = _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8"))
    mac = hmac.new(secret.encode("utf-8"), f"{purpose}:{body}".encode("ascii"), hashlib.sha256)
    return f"{body}.{_b64(mac.digest())}"


def verify(token: str, secret: str, purpose: str) -> dict[str, Any]:
    """The payload of a valid token; raise `BadToken` otherwise."""
    body, _, signature = token.partition(".")
    if not body or not signature or not token.isascii():
        raise BadToken("malformed token")
    expected = hmac.new(
        secret.encode("utf-8"), f"{purpose}:{body}".encode("ascii"), hashlib.sha256
    ).digest()
    try:
        given = _unb64(signature)
        payload = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError) as exc:
        raise BadToken("malformed token") from exc
    if not hmac.compare_digest(expected, given) or not isinstance(payload, dict):
        raise BadToken("signature does not match")
    return payload


def unsubscribe_token(secret: str, customer_id: str, email: str) -> str:
    return sign({"c": customer_id, "e": email.lower()}, secret, "unsubscribe")


def read_unsubscribe_token(secret: str, token: str) -> tuple[str, str]:
    """(customer id, contact email) of a valid unsubscribe token."""
    payload = verify(token, secret, "unsubscribe")
    customer, email = payload.get("c"), payload.get("e")
    if not isinstance(customer, str) or not isinstance(email, str):
        raise BadToken("token does not name a contact")
    return customer, email
