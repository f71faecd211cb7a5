"""The signing secret: refused when short in production, one key per purpose, rotation, and
unsubscribe links already sent (either format) that keep working across a rotation."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from engine.api.app import create_app
from engine.api.auth import hash_password
from engine.cli import main
from engine.errors import BadToken, ConfigError
from engine.services import Services
from engine.settings import Settings, _cached_settings, load_settings
from engine.signing import (
    Keyring,
    Purpose,
    read_unsubscribe_token,
    sign,
    unsubscribe_token,
    verify,
)
from engine.store import logins
from engine.store.models import TeamMember, utcnow
from engine.web.security import SESSION_COOKIE
from tests.api.test_api_unsubscribe import ONE_CLICK, state
from tests.helpers.api import admin_of, champion_of

OLD = "old-secret-" + "o" * 40
NEW = "new-secret-" + "n" * 40


# -- the secret's strength ---------------------------------------------------------------------
def test_a_short_secret_is_refused_in_production(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        load_settings(playbook_home=tmp_path, signing_secret="a")
    message = str(refused.value)
    assert "SIGNING_SECRET has 1 bytes" in message
    assert "secrets.token_urlsafe(48)" in message  # says how to make a good one
    with pytest.raises(ConfigError, match="SIGNING_SECRETS_PREVIOUS"):
        load_settings(playbook_home=tmp_path, signing_secret=NEW, signing_secrets_previous=["a"])


def test_a_short_secret_is_accepted_in_development(tmp_path: Path) -> None:
    settings = load_settings(playbook_home=tmp_path, signing_secret="a", playbook_env="development")
    assert settings.signing_keys().current == "a"


def test_the_generated_secret_is_long_enough_for_production(tmp_path: Path) -> None:
    settings = load_settings(playbook_home=tmp_path, signing_secret="")
    assert len(settings.signing_secret.get_secret_value()) >= 32
    assert (tmp_path / "secret").read_text().strip() == settings.signing_secret.get_secret_value()


def test_previous_secrets_come_from_the_environment_comma_separated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SIGNING_SECRET", NEW)
    monkeypatch.setenv("SIGNING_SECRETS_PREVIOUS", f"{OLD}, {'x' * 32}")
    keys = load_settings(playbook_home=tmp_path).signing_keys()
    assert keys == Keyring(NEW, (OLD, "x" * 32))
    assert OLD not in repr(load_settings(playbook_home=tmp_path))


def test_the_cli_refuses_to_start_with_a_short_secret(tmp_path: Path) -> None:
    _cached_settings.cache_clear()  # the CLI reads the process-wide settings
    try:
        result = CliRunner().invoke(
            main,
            ["token", "create", "probe", "--scope", "ingest"],
            env={"SIGNING_SECRET": "a", "PLAYBOOK_HOME": str(tmp_path), "PLAYBOOK_ENV": None},
        )
    finally:
        _cached_settings.cache_clear()
    assert result.exit_code == 1
    assert "SIGNING_SECRET has 1 bytes" in result.output
    assert "token_urlsafe" in result.output
    assert "Traceback" not in result.output


# -- keys per purpose and rotation ---------------------------------------------------------------
def test_a_token_signed_for_one_purpose_fails_for_every_other() -> None:
    keys = Keyring(NEW)
    for purpose in Purpose:
        token = sign({"u": "admin@example.com", "exp": 2**40}, keys, purpose)
        assert verify(token, keys, purpose)["u"] == "admin@example.com"
        for other in set(Purpose) - {purpose}:
            with pytest.raises(BadToken):
                verify(token, keys, other)
    assert len({keys.key(p) for p in Purpose}) == len(Purpose)
    assert all(keys.key(p) != NEW.encode() for p in Purpose)
    assert keys.mac(Purpose.CSRF, "cookie") != keys.mac(Purpose.LOGIN, "cookie")


def test_a_token_of_the_old_key_verifies_while_it_is_listed_as_previous() -> None:
    old_token = sign({"u": "a@example.com"}, Keyring(OLD), Purpose.SESSION)
    rotated = Keyring(NEW, (OLD,))
    assert verify(old_token, rotated, Purpose.SESSION) == {"u": "a@example.com"}
    assert rotated.check_mac(Purpose.CSRF, "c", Keyring(OLD).mac(Purpose.CSRF, "c"))
    # new tokens are signed with the new key only
    assert sign({"u": "x"}, rotated, Purpose.SESSION) == sign(
        {"u": "x"}, Keyring(NEW), Purpose.SESSION
    )
    with pytest.raises(BadToken):
        verify(old_token, Keyring(NEW), Purpose.SESSION)
    assert not Keyring(NEW).check_mac(Purpose.CSRF, "c", Keyring(OLD).mac(Purpose.CSRF, "c"))


def unversioned_unsubscribe_token(secret: str, customer_id: str, email: str) -> str:
    """An unsubscribe token as the engine made them before version 2 (links in inboxes)."""
    payload = json.dumps(
        {"c": customer_id, "e": email.lower()}, sort_keys=True, separators=(",", ":")
    )
    body = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    mac = hmac.new(secret.encode(), f"unsubscribe:{body}".encode(), hashlib.sha256).digest()
    return f"{body}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"


def test_unsubscribe_tokens_carry_a_version_and_old_ones_still_read() -> None:
    token = unsubscribe_token(Keyring(NEW), "acme", "Ann@Acme.example")
    assert token.startswith("v2.")
    assert read_unsubscribe_token(Keyring(OLD, (NEW,)), token) == ("acme", "ann@acme.example")
    legacy = unversioned_unsubscribe_token(OLD, "acme", "ann@acme.example")
    assert read_unsubscribe_token(Keyring(OLD), legacy) == ("acme", "ann@acme.example")
    assert read_unsubscribe_token(Keyring(NEW, (OLD,)), legacy) == ("acme", "ann@acme.example")
    with pytest.raises(BadToken):
        read_unsubscribe_token(Keyring(NEW), legacy)  # its secret was dropped
    with pytest.raises(BadToken):  # only unsubscribe links accept the old format
        verify(legacy, Keyring(OLD), Purpose.UNSUBSCRIBE)


# -- the server after a rotation ------------------------------------------------------------------
def rotated(settings: Settings, current: str, *previous: str) -> Settings:
    return settings.model_copy(
        update={
            "signing_secret": SecretStr(current),
            "signing_secrets_previous": [SecretStr(p) for p in previous],
        }
    )


@pytest.fixture
async def after_rotation(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The same store and Temporal behind an app whose secret was rotated: the test
    settings' secret is now the previous one."""
    before = services.settings.signing_secret.get_secret_value()
    app = create_app(replace(services, settings=rotated(services.settings, NEW, before)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        yield client


@pytest.fixture
async def after_the_old_secret_is_dropped(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(replace(services, settings=rotated(services.settings, NEW)))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app), base_url="http://testserver"
    ) as client:
        yield client


async def test_links_already_sent_keep_working_after_a_rotation(
    services: Services,
    customer: str,
    after_rotation: httpx.AsyncClient,
    after_the_old_secret_is_dropped: httpx.AsyncClient,
) -> None:
    before = services.settings.signing_secret.get_secret_value()
    sent = unsubscribe_token(Keyring(before), customer, admin_of(customer))
    sent_long_ago = unversioned_unsubscribe_token(before, customer, champion_of(customer))
    for dropped in (sent, sent_long_ago):
        refused = await after_the_old_secret_is_dropped.post(
            f"/unsubscribe/{dropped}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
        )
        assert refused.status_code == 400
    page = await after_rotation.get(f"/unsubscribe/{sent}")
    assert page.status_code == 200 and admin_of(customer) in page.text
    for token, address in ((sent, admin_of(customer)), (sent_long_ago, champion_of(customer))):
        done = await after_rotation.post(
            f"/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK
        )
        assert done.status_code == 200, done.text
        unsubscribed, suppression = state(services, customer, address)
        assert unsubscribed and suppression is not None


async def test_sessions_do_not_hang_on_the_signing_secret(
    services: Services,
    after_rotation: httpx.AsyncClient,
    after_the_old_secret_is_dropped: httpx.AsyncClient,
) -> None:
    """A session cookie is an opaque secret stored hashed, not a signed value: rotating the
    signing secret logs nobody out, and nothing the app signs passes for a session."""
    email = "rotation-admin@example.com"
    with services.sessions.begin() as session:
        session.merge(
            TeamMember(email=email, name="Rota", is_admin=True, password_hash=hash_password("x"))
        )
        opened = logins.open_session(session, email, utcnow())
    cookie = {"Cookie": f"{SESSION_COOKIE}={opened}"}
    assert (await after_rotation.get("/inbox", headers=cookie)).status_code == 200
    assert (await after_the_old_secret_is_dropped.get("/inbox", headers=cookie)).status_code == 200
    flash = sign({"u": email, "exp": 2**40}, services.settings.signing_keys(), Purpose.FLASH)
    as_session = {"Cookie": f"{SESSION_COOKIE}={flash}"}
    assert (await after_rotation.get("/inbox", headers=as_session)).status_code == 303
