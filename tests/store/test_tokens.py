"""API tokens in the store: scopes, expiry, revocation, the demo's one token, the CLI, and
the migration that gave tokens that existed before it their scopes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from engine.cli import main
from engine.demo import DEMO_TOKEN, DEMO_TOKEN_SCOPES
from engine.errors import Invalid, NotFound, TokenRefused
from engine.scopes import Scope, grants
from engine.services import tokens
from engine.settings import settings_override
from engine.store.db import migrate
from engine.store.models import ApiToken, utcnow


def test_admin_implies_every_scope_and_nothing_else_implies_another() -> None:
    for scope in Scope:
        assert grants(["admin"], scope)
        assert grants([scope.value], scope)
    assert not grants(["ingest"], Scope.OPERATE)
    assert not grants(["operate"], Scope.ADMIN)
    assert not grants(["ingest", "operate", "superuser"], Scope.ADMIN)
    assert not grants([], Scope.INGEST)


def test_a_token_is_refused_once_expired_or_revoked(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        issued = tokens.issue(session, "ci", ["operate"], tokens.expiry("1h"), "test")
    with sessions.begin() as session:
        assert tokens.authenticate(session, issued.secret).scopes == ["operate"]
        with pytest.raises(TokenRefused, match="invalid"):
            tokens.authenticate(session, issued.secret + "x")
        session.get(ApiToken, issued.info.id).expires_at = utcnow() - timedelta(seconds=1)
    with sessions.begin() as session, pytest.raises(TokenRefused, match="expired"):
        tokens.authenticate(session, issued.secret)
    with sessions.begin() as session:
        session.get(ApiToken, issued.info.id).expires_at = None
        assert tokens.authenticate(session, issued.secret)
        tokens.revoke(session, issued.info.id)
    with sessions.begin() as session, pytest.raises(TokenRefused, match="revoked"):
        tokens.authenticate(session, issued.secret)
    with sessions.begin() as session, pytest.raises(NotFound):
        tokens.revoke(session, 424242)


def test_scopes_and_expiry_are_checked_when_issued(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        for scopes in ([], ["root"]):
            with pytest.raises(Invalid, match="scope"):
                tokens.issue(session, "x", scopes, None)
        assert tokens.issue(session, "x", ["ADMIN", "admin"], None).info.scopes == ["admin"]
    for bad in ("soon", "0s", "-1d", "99999999999w"):
        with pytest.raises(Invalid, match="expiry"):
            tokens.expiry(bad)
    assert tokens.expiry("never") is None
    now = utcnow()
    assert tokens.expiry("90d", now) == now + timedelta(days=90)


def test_the_demo_creates_its_token_once(sessions: sessionmaker[Session]) -> None:
    """`playbook up --demo` calls this on every start: one token, its secret shown once."""
    with sessions.begin() as session:
        first = tokens.ensure(session, DEMO_TOKEN, DEMO_TOKEN_SCOPES, created_by="demo")
    with sessions.begin() as session:
        second = tokens.ensure(session, DEMO_TOKEN, DEMO_TOKEN_SCOPES, created_by="demo")
    assert first is not None and second is None
    assert first.info.scopes == ["ingest", "operate"]
    with sessions() as session:
        assert [t.name for t in tokens.list_tokens(session)] == [DEMO_TOKEN]
    with sessions.begin() as session:  # once revoked (or expired), a start makes a new one
        tokens.revoke(session, first.info.id)
    with sessions.begin() as session:
        assert tokens.ensure(session, DEMO_TOKEN, DEMO_TOKEN_SCOPES, created_by="demo")


def test_cli_creates_lists_and_revokes_without_showing_secrets(
    db_url: str, tmp_path: Path, sessions: sessionmaker[Session]
) -> None:
    def playbook(*args: str) -> tuple[int, str, str]:
        with settings_override(playbook_home=tmp_path / "home", database_url=db_url):
            result = CliRunner().invoke(main, list(args), catch_exceptions=False)
        return result.exit_code, result.stdout, result.stderr

    code, out, err = playbook("token", "create", "crm", "--scope", "ingest", "--expires", "30d")
    assert code == 0, err
    secret = out.strip()
    assert secret.startswith("pbk_") and "ingest" in err
    code, out, err = playbook("token", "create", "ops", "--scope", "operate", "--scope", "admin")
    assert code == 0, err
    assert playbook("token", "create", "none")[0] == 2  # --scope is required
    assert playbook("token", "create", "x", "--scope", "root")[0] == 2
    code, _, err = playbook("token", "create", "x", "--scope", "ingest", "--expires", "soon")
    assert code == 1 and "expiry" in err

    code, listing, _ = playbook("token", "list")
    assert code == 0
    assert secret not in listing and secret[4:12] not in listing
    assert "crm" in listing and "ingest" in listing and "operate, admin" in listing
    assert "active" in listing and "cli:" in listing

    with sessions() as session:
        [crm] = [t for t in tokens.list_tokens(session) if t.name == "crm"]
    code, _, err = playbook("token", "revoke", str(crm.id))
    assert code == 0 and "revoked" in err
    with sessions.begin() as session, pytest.raises(TokenRefused, match="revoked"):
        tokens.authenticate(session, secret)
    assert "revoked" in playbook("token", "list")[1]
    code, listed, _ = playbook("token", "list", "--format", "json")
    assert code == 0 and secret not in listed
    by_name = {t["name"]: t for t in json.loads(listed)}
    assert by_name["crm"]["state"] == "revoked" and by_name["crm"]["scopes"] == ["ingest"]
    assert by_name["ops"]["state"] == "active" and by_name["ops"]["expires_at"].startswith("20")
    code, _, err = playbook("token", "revoke", "9999")
    assert code == 1 and "no API token" in err


def test_tokens_from_before_scopes_keep_ingest_and_operate_not_admin(empty_db_url: str) -> None:
    migrate(empty_db_url, "0001")
    engine = create_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO api_tokens (name, token_hash, created_at) "
                    "VALUES ('old', :digest, CURRENT_TIMESTAMP)"
                ),
                {"digest": ApiToken.hash_token("pbk_old")},
            )
        migrate(empty_db_url)
        with Session(engine) as session:
            assert tokens.authenticate(session, "pbk_old").scopes == ["ingest", "operate"]
            [info] = tokens.list_tokens(session)
            assert info.expires_at is None and info.revoked_at is None
    finally:
        engine.dispose()
