"""Model-level guarantees: aware UTC timestamps, JSON, constraints, engines and pragmas."""

from __future__ import annotations

import stat
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from engine.store.db import create_engine_for, resolve_url, session_factory
from engine.store.models import (
    ApiToken,
    Contact,
    Customer,
    Event,
    MilestoneState,
    Task,
    TeamMember,
)

PARIS_SUMMER = timezone(timedelta(hours=2))


def _customer(customer_id: str = "acme", **overrides: object) -> Customer:
    fields: dict[str, object] = {"id": customer_id, "name": "Acme Inc."} | overrides
    return Customer(**fields)


def test_customer_defaults_and_json_round_trip(session: Session) -> None:
    session.add(
        _customer(
            renewal_date=date(2027, 3, 31),
            attributes={"plan": "pro", "seats": 40, "flags": {"beta": True}},
            tags=["vip", "emea"],
        )
    )
    session.commit()
    session.expunge_all()

    customer = session.get(Customer, "acme")
    assert customer is not None
    assert customer.timezone == "UTC"
    assert customer.attributes == {"plan": "pro", "seats": 40, "flags": {"beta": True}}
    assert customer.tags == ["vip", "emea"]
    assert customer.renewal_date == date(2027, 3, 31)
    assert customer.created_at.tzinfo is UTC


def test_timestamps_come_back_as_aware_utc(session: Session) -> None:
    local = datetime(2026, 6, 1, 9, 30, tzinfo=PARIS_SUMMER)
    session.add(Event(id="e1", customer_id="acme", name="login", at=local))
    session.commit()
    session.expunge_all()

    event = session.get(Event, "e1")
    assert event is not None
    assert event.at == local
    assert event.at.tzinfo is UTC
    assert event.at.hour == 7


def test_naive_timestamps_are_refused(session: Session) -> None:
    session.add(Event(id="e1", customer_id="acme", name="login", at=datetime(2026, 6, 1)))

    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_timestamps_sort_chronologically_across_offsets(session: Session) -> None:
    """SQLite compares timestamps as text; storing UTC keeps the order right."""
    early_in_tokyo = datetime(2026, 6, 1, 8, 0, tzinfo=timezone(timedelta(hours=9)))
    later_in_utc = datetime(2026, 6, 1, 0, 30, tzinfo=UTC)
    session.add_all(
        [
            Event(id="late", customer_id="c", name="x", at=later_in_utc),
            Event(id="early", customer_id="c", name="x", at=early_in_tokyo),
        ]
    )
    session.commit()

    ordered = session.scalars(select(Event.id).order_by(Event.at)).all()
    assert ordered == ["early", "late"]


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown IANA time zone 'Mars/Olympus'"):
        _customer(timezone="Mars/Olympus")


def test_emails_are_normalized(session: Session) -> None:
    customer = _customer(owner_email=" Jane.CSM@Example.com ")
    customer.contacts.append(Contact(email="Bob@Acme.COM"))
    session.add_all([customer, TeamMember(email="Jane.CSM@example.com", name="Jane")])
    session.commit()

    assert customer.owner_email == "jane.csm@example.com"
    assert customer.contacts[0].email == "bob@acme.com"
    assert session.get(TeamMember, "jane.csm@example.com") is not None


def test_health_score_must_be_0_to_100(session: Session) -> None:
    session.add(_customer(health_score=101))

    with pytest.raises(IntegrityError):
        session.commit()


def test_contact_email_is_unique_per_customer_only(session: Session) -> None:
    session.add_all([_customer("a"), _customer("b")])
    session.add_all(
        [Contact(customer_id="a", email="x@y.io"), Contact(customer_id="b", email="x@y.io")]
    )
    session.commit()

    session.add(Contact(customer_id="a", email="X@y.io"))
    with pytest.raises(IntegrityError):
        session.commit()


def test_deleting_a_customer_cascades_in_the_database(session: Session) -> None:
    """ON DELETE CASCADE is enforced by the database (SQLite needs foreign_keys=ON)."""
    now = datetime.now(UTC)
    session.add(_customer())
    session.add(Contact(customer_id="acme", email="x@acme.io"))
    session.add(MilestoneState(customer_id="acme", milestone="first_value", reached_at=now))
    session.add(Event(id="e1", customer_id="acme", name="login", at=now))
    session.commit()

    session.execute(delete(Customer).where(Customer.id == "acme"))
    session.commit()

    assert session.scalars(select(Contact)).all() == []
    assert session.scalars(select(MilestoneState)).all() == []
    assert session.get(Event, "e1") is not None  # history outlives the customer


def test_contacts_need_an_existing_customer(session: Session) -> None:
    session.add(Contact(customer_id="ghost", email="x@ghost.io"))

    with pytest.raises(IntegrityError):
        session.commit()


def test_events_for_unknown_customers_are_stored(session: Session) -> None:
    session.add(Event(id="e1", customer_id="nobody", name="login", at=datetime.now(UTC)))
    session.commit()

    assert session.get(Event, "e1") is not None


def test_escalation_link_is_cleared_when_the_original_task_goes(session: Session) -> None:
    session.add(Task(id="t1", idempotency_key="k1", title="Kickoff"))
    session.flush()
    session.add(Task(id="t2", idempotency_key="k2", title="Escalated", escalation_of="t1"))
    session.commit()

    session.execute(delete(Task).where(Task.id == "t1"))
    session.commit()
    session.expunge_all()

    escalation = session.get(Task, "t2")
    assert escalation is not None
    assert escalation.escalation_of is None
    assert escalation.status == "open"
    assert escalation.outcomes == []


def test_api_tokens_store_only_a_unique_sha256(session: Session) -> None:
    digest = ApiToken.hash_token("s3cret")
    assert len(digest) == 64 and digest != "s3cret"

    session.add(ApiToken(name="ci", token_hash=digest))
    session.commit()
    session.add(ApiToken(name="copy", token_hash=digest))
    with pytest.raises(IntegrityError):
        session.commit()


def test_sqlite_engine_creates_the_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dir" / "playbook.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        with engine.connect() as connection:
            pragma = {
                name: connection.execute(text(f"PRAGMA {name}")).scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()

    assert path.parent.is_dir()
    assert pragma == {"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 30000}


@pytest.mark.parametrize(
    "url", ["postgres://u@h/db", "postgresql://u@h/db", "postgresql+psycopg://u@h/db"]
)
def test_postgres_urls_use_psycopg3(url: str) -> None:
    assert resolve_url(url).drivername == "postgresql+psycopg"


def test_session_factory_is_cached_and_keeps_objects_after_commit(db_url: str) -> None:
    factory = session_factory(db_url)
    assert session_factory(db_url) is factory

    with factory.begin() as session:
        customer = _customer()
        session.add(customer)

    assert customer.name == "Acme Inc."  # expire_on_commit=False: still readable


def test_a_new_sqlite_file_is_readable_by_its_owner_only(tmp_path) -> None:
    path = tmp_path / "home" / "playbook.db"
    engine = create_engine_for(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:  # WAL: the -wal and -shm files appear too
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
            made = [p for p in path.parent.iterdir() if p.name.startswith("playbook.db")]
            assert {p.name for p in made} >= {"playbook.db", "playbook.db-wal"}
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in made}
    finally:
        engine.dispose()
    assert all(mode & 0o077 == 0 for mode in modes.values()), modes
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
