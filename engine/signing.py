"""Signed values: session cookies, CSRF and login-form tokens, flash messages, unsubscribe links.

- One key per purpose. `SIGNING_SECRET` is never a key itself: each `Purpose` gets its own
  key, derived from it with HKDF-SHA256 (RFC 5869), so a value signed for one purpose (a
  flash message a visitor can make the app sign) never verifies as another (a session).
- Rotation. A `Keyring` signs with the current secret and verifies with it and with the
  previous ones (`SIGNING_SECRETS_PREVIOUS`), so sessions, open forms and links already
  sent keep working while the previous secret stays listed.
- Versioned tokens. `sign` makes ``v2.<payload>.<signature>``; the version is covered by
  the signature, so a later scheme can be told apart and accepted side by side.
- Unsubscribe links sent before version 2 (``<payload>.<signature>``, an HMAC keyed with
  the secret itself) sit in inboxes: `read_unsubscribe_token` still accepts them, checked
  against the current and previous secrets, so they stop working only when the secret that
  signed them is dropped from the keyring. Nothing else accepts the old format.

An unsubscribe token names exactly one contact of one customer, so it cannot be forged nor
moved to another contact: changing any byte breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any, Final

from engine.errors import BadToken

TOKEN_VERSION: Final = "v2"
# A production secret must carry at least this many bytes (a generated one has 43).
MIN_SECRET_BYTES: Final = 32
GENERATE_SECRET_HINT: Final = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
# HKDF salt: fixed, it only separates this application's keys from other uses of the secret.
_HKDF_SALT: Final = b"playbook-engine signing keys"


class Purpose(StrEnum):
    """What a signed value is for; each purpose has its own derived key."""

    SESSION = "session"
    CSRF = "csrf"
    LOGIN = "login"  # the login form's token, bound to its nonce cookie
    FLASH = "flash"
    UNSUBSCRIBE = "unsubscribe"


@lru_cache(maxsize=64)
def derive_key(secret: str, purpose: Purpose) -> bytes:
    """The 32-byte key of ``purpose``: HKDF-SHA256 of ``secret``, one output block."""
    prk = hmac.new(_HKDF_SALT, secret.encode("utf-8"), hashlib.sha256).digest()
    info = f"playbook-engine {purpose.value}".encode("ascii")
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


@dataclass(frozen=True)
class Keyring:
    """The current secret (signs and verifies) and previous ones (verify only)."""

    current: str
    previous: tuple[str, ...] = ()

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.current, *self.previous)

    def key(self, purpose: Purpose) -> bytes:
        """The signing key of ``purpose`` (from the current secret)."""
        return derive_key(self.current, purpose)

    def verification_keys(self, purpose: Purpose) -> list[bytes]:
        return [derive_key(secret, purpose) for secret in self.secrets]

    def mac(self, purpose: Purpose, value: str) -> str:
        """A hex MAC of ``value`` under the current key of ``purpose``."""
        return hmac.new(self.key(purpose), value.encode("utf-8"), hashlib.sha256).hexdigest()

    def check_mac(self, purpose: Purpose, value: str, given: str | None) -> bool:
        """Whether ``given`` is the MAC of ``value`` under any key of ``purpose``."""
        if not given:
            return False
        data = value.encode("utf-8")
        return any(
            hmac.compare_digest(given, hmac.new(key, data, hashlib.sha256).hexdigest())
            for key in self.verification_keys(purpose)
        )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _body(payload: dict[str, Any]) -> str:
    return _b64(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8"))


def _signature(key: bytes, signed: str) -> bytes:
    return hmac.new(key, signed.encode("ascii"), hashlib.sha256).digest()


def sign(payload: dict[str, Any], keys: Keyring, purpose: Purpose) -> str:
    """``v2.<payload>.<signature>`` under the current key of ``purpose``."""
    signed = f"{TOKEN_VERSION}.{_body(payload)}"
    return f"{signed}.{_b64(_signature(keys.key(purpose), signed))}"


def _checked_payload(body: str, signature: str, candidates: Iterable[bytes]) -> dict[str, Any]:
    """The payload of ``body`` if ``signature`` equals one of ``candidates``."""
    try:
        given = _unb64(signature)
        payload = json.loads(_unb64(body))
    except (ValueError, json.JSONDecodeError) as exc:
        raise BadToken("malformed token") from exc
    matched = False
    for expected in candidates:  # no early exit: every key costs the same
        matched |= hmac.compare_digest(expected, given)
    if not matched or not isinstance(payload, dict):
        raise BadToken("signature does not match")
    return payload


def verify(token: str, keys: Keyring, purpose: Purpose) -> dict[str, Any]:
    """The payload of a valid token of ``purpose`` under any key; raise `BadToken` otherwise."""
    version, _, rest = token.partition(".")
    body, _, signature = rest.partition(".")
    if version != TOKEN_VERSION or not body or not signature or not token.isascii():
        raise BadToken("malformed token")
    signed = f"{version}.{body}"
    return _checked_payload(
        body, signature, (_signature(key, signed) for key in keys.verification_keys(purpose))
    )


def _verify_unversioned(token: str, keys: Keyring, purpose: Purpose) -> dict[str, Any]:
    """The first format: ``<payload>.<signature>``, HMAC-SHA256 keyed with the secret itself
    over ``<purpose>:<payload>``. Only for links already in inboxes."""
    body, _, signature = token.partition(".")
    if not body or not signature or not token.isascii():
        raise BadToken("malformed token")
    signed = f"{purpose.value}:{body}"
    return _checked_payload(
        body,
        signature,
        (_signature(secret.encode("utf-8"), signed) for secret in keys.secrets),
    )


def unsubscribe_token(keys: Keyring, customer_id: str, email: str) -> str:
    return sign({"c": customer_id, "e": email.lower()}, keys, Purpose.UNSUBSCRIBE)


def read_unsubscribe_token(keys: Keyring, token: str) -> tuple[str, str]:
    """(customer id, contact email) of a valid unsubscribe token, either format."""
    if token.startswith(TOKEN_VERSION + "."):
        payload = verify(token, keys, Purpose.UNSUBSCRIBE)
    else:
        payload = _verify_unversioned(token, keys, Purpose.UNSUBSCRIBE)
    customer, email = payload.get("c"), payload.get("e")
    if not isinstance(customer, str) or not isinstance(email, str):
        raise BadToken("token does not name a contact")
    return customer, email
