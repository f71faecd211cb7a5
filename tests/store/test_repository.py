"""Repository functions: upserts, idempotent creates (also under races), state changes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

import pytest
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.store import repository as repo
from engine.store.db import session_factory
from engine.store.models import Event, OutboxMessage, Task

T = TypeVar("T")
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _acme(**fields: object) -> repo.CustomerData:
    return repo.CustomerData.model_validate({"id": "acme", "name": "Acme Inc."} | fields)


def _count(session: Session, model: type[object]) -> int:
    return session.scalar(select(func.count()).select_from(model)) or 0


def _race(db_url: str, work: Callable[[Session], T], workers: int = 8) -> list[T]:
    """Run `work` in `workers` threads at once, each in its own committed transaction."""
    factory = session_factory(db_url)
    barrier = threading.Barrier(workers)

    def run() -> T:
        barrier.wait()
        with factory.begin() as session:
            return work(session)

    with ThreadPoolExecutor(workers) as pool:
        return [f.result() for f in [pool.submit(run) for _ in range(workers)]]


# --- customers -----------------------------------------------------------------------------


def test_upsert_customer_creates_with_contacts(session: Session) -> None:
    customer = repo.upsert_customer(
        session,
        _acme(
            segment="enterprise",
            timezone="Europe/Paris",
            owner_email="Jane@Example.com",
            renewal_date=date(2027, 1, 31),
            health_score=72,
            attributes={"plan": "pro"},
            tags=["vip"],
            contacts=[{"email": "Ann@Acme.io", "first_name": "Ann", "role": "admin"}],
        ),
    )
    session.commit()

    assert customer.timezone == "Europe/Paris"
    assert customer.owner_email == "jane@example.com"
    assert [(c.email, c.first_name, c.role) for c in customer.contacts] == [
        ("ann@acme.io", "Ann", "admin")
    ]
    assert customer.created_at.tzinfo is UTC


def test_upsert_customer_updates_only_the_fields_given(session: Session) -> None:
    repo.upsert_customer(
        session, _acme(segment="smb", health_score=40, owner_email="jane@example.com")
    )
    created = repo.get_customer(session, "acme")
    assert created is not None
    first_created_at = created.created_at

    updated = repo.upsert_customer(session, _acme(health_score=80, owner_email=None))
    session.commit()

    assert (updated.segment, updated.health_score, updated.owner_email) == ("smb", 80, None)
    assert updated.created_at == first_created_at
    assert updated.updated_at >= first_created_at


def test_upsert_customer_keeps_contacts_and_their_unsubscribe(session: Session) -> None:
    repo.upsert_customer(
        session,
        _acme(contacts=[{"email": "ann@acme.io", "first_name": "Ann"}, {"email": "bob@acme.io"}]),
    )
    repo.suppress(session, "ann@acme.io", "unsubscribe link")

    customer = repo.upsert_customer(
        session, _acme(contacts=[{"email": "ANN@acme.io", "role": "champion"}])
    )
    session.commit()

    by_email = {c.email: c for c in customer.contacts}
    assert set(by_email) == {"ann@acme.io", "bob@acme.io"}
    assert by_email["ann@acme.io"].first_name == "Ann"  # not given, so unchanged
    assert by_email["ann@acme.io"].role == "champion"
    assert by_email["ann@acme.io"].unsubscribed is True


def test_customer_data_rejects_bad_input() -> None:
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        _acme(timezone="Europe/Atlantis")
    with pytest.raises(ValidationError, match="less than or equal to 100"):
        _acme(health_score=120)
    with pytest.raises(ValidationError, match="not an email address"):
        _acme(contacts=[{"email": "nobody"}])
    with pytest.raises(ValidationError, match="Extra inputs"):
        _acme(colour="blue")


def test_get_customer_unknown_is_none(session: Session) -> None:
    assert repo.get_customer(session, "nope") is None
    assert repo.customer_exists(session, "nope") is False


# --- events and milestones -----------------------------------------------------------------


def test_same_event_id_twice_is_stored_once(session: Session) -> None:
    repo.upsert_customer(session, _acme())
    first = repo.record_event(
        session, event_id="evt-1", customer_id="acme", name="login", at=NOW, properties={"n": 1}
    )
    again = repo.record_event(
        session, event_id="evt-1", customer_id="acme", name="login", at=NOW, properties={"n": 2}
    )
    session.commit()

    assert (first, again) == (True, False)
    assert _count(session, Event) == 1
    event = repo.get_event(session, "evt-1")
    assert event is not None
    assert event.properties == {"n": 1}  # the first copy wins
    assert event.status == "received"


def test_event_for_unknown_customer_is_kept_with_a_reason(session: Session) -> None:
    assert repo.record_event(session, event_id="e", customer_id="ghost", name="login", at=NOW)

    event = repo.get_event(session, "e")
    assert event is not None
    assert event.status == "unknown_customer"
    assert event.note == "no customer with id 'ghost'"


def test_event_status_can_be_updated(session: Session) -> None:
    repo.record_event(session, event_id="e", customer_id="c", name="n", at=NOW, status="received")
    repo.set_event_status(session, "e", "routed", note="started onboarding")

    event = repo.get_event(session, "e")
    assert event is not None
    assert (event.status, event.note) == ("routed", "started onboarding")
    with pytest.raises(repo.NotFoundError):
        repo.set_event_status(session, "missing", "routed")


def test_naive_event_time_is_refused(session: Session) -> None:
    with pytest.raises(ValueError, match="at must be timezone-aware"):
        repo.record_event(session, event_id="e", customer_id="c", name="n", at=datetime(2026, 1, 1))


def test_concurrent_deliveries_of_one_event_store_it_once(db_url: str) -> None:
    def deliver(session: Session) -> bool:
        return repo.record_event(
            session, event_id="evt-race", customer_id="acme", name="login", at=NOW
        )

    results = _race(db_url, deliver)

    assert sorted(results) == [False] * 7 + [True]
    with session_factory(db_url)() as session:
        assert _count(session, Event) == 1


def test_milestones_keep_first_reach_and_count(session: Session) -> None:
    repo.upsert_customer(session, _acme())
    repo.record_milestone(session, customer_id="acme", milestone="wau", at=NOW, value=3)
    state = repo.record_milestone(
        session, customer_id="acme", milestone="wau", at=NOW + timedelta(days=1), value=5
    )
    session.commit()

    assert (state.reached_at, state.count, state.value) == (NOW, 2, 5)
    assert set(repo.get_milestones(session, "acme")) == {"wau"}


# --- tasks ---------------------------------------------------------------------------------


def _task(session: Session, key: str = "wf-1/kickoff", **fields: object) -> tuple[Task, bool]:
    defaults: dict[str, object] = {
        "title": "Kickoff call with Acme",
        "enrollment_id": "wf-1",
        "playbook_id": "onboarding",
        "step_id": "kickoff",
        "customer_id": "acme",
        "assignee_email": "Jane@Example.com",
        "due_at": NOW + timedelta(days=3),
        "outcomes": ["held", "rescheduled"],
    }
    return repo.create_task(session, idempotency_key=key, **(defaults | fields))  # type: ignore[arg-type]


def test_create_task_is_idempotent_by_key(session: Session) -> None:
    task, created = _task(session)
    again, created_again = _task(session, title="Something else")
    session.commit()

    assert (created, created_again) == (True, False)
    assert again.id == task.id and again.title == "Kickoff call with Acme"
    assert task.assignee_email == "jane@example.com"
    assert (task.status, task.priority, task.due_at) == ("open", "normal", NOW + timedelta(days=3))
    assert _count(session, Task) == 1


def test_complete_task_records_outcome_and_is_retry_safe(session: Session) -> None:
    task, _ = _task(session)

    done = repo.complete_task(session, task.id, outcome="held", completed_by="jane@example.com")
    repeat = repo.complete_task(session, task.id, outcome="held", completed_by="jane@example.com")

    assert (done.status, done.outcome, done.completed_by) == (
        "completed",
        "held",
        "jane@example.com",
    )
    assert done.completed_at is not None
    assert repeat.completed_at == done.completed_at
    with pytest.raises(repo.ConflictError):
        repo.complete_task(session, task.id, outcome="rescheduled", completed_by="jane@example.com")


def test_complete_task_rejects_unknown_task_and_outcome(session: Session) -> None:
    task, _ = _task(session)

    with pytest.raises(ValueError, match="'cancelled' is not one of"):
        repo.complete_task(session, task.id, outcome="cancelled", completed_by="j@example.com")
    with pytest.raises(repo.NotFoundError):
        repo.complete_task(session, "nope", outcome="held", completed_by="j@example.com")


def test_cancelled_task_cannot_be_completed(session: Session) -> None:
    task, _ = _task(session)
    cancelled = repo.cancel_task(session, task.id, note="enrollment exited")

    assert (cancelled.status, cancelled.note) == ("cancelled", "enrollment exited")
    with pytest.raises(repo.ConflictError):
        repo.complete_task(session, task.id, outcome="held", completed_by="j@example.com")


def test_concurrent_completions_with_different_outcomes_have_one_winner(db_url: str) -> None:
    """The conditional UPDATE lets exactly one outcome win; same-outcome retries succeed."""
    with session_factory(db_url).begin() as session:
        task, _ = _task(session)
    outcomes = iter(["held", "rescheduled"] * 2)
    lock = threading.Lock()

    def complete(session: Session) -> tuple[str, str]:
        with lock:
            outcome = next(outcomes)
        try:
            repo.complete_task(session, task.id, outcome=outcome, completed_by="a@example.com")
        except repo.ConflictError:
            return outcome, "conflict"
        return outcome, "ok"

    results = _race(db_url, complete, workers=4)

    with session_factory(db_url)() as session:
        stored = repo.get_task(session, task.id)
    assert stored is not None and stored.status == "completed"
    for outcome, result in results:
        assert result == ("ok" if outcome == stored.outcome else "conflict")


# --- outbox and suppression ----------------------------------------------------------------


def _outbox(session: Session, key: str = "wf-1/welcome/ann@acme.io") -> tuple[OutboxMessage, bool]:
    return repo.insert_outbox(
        session,
        idempotency_key=key,
        contact_email="Ann@Acme.io",
        to_name="Ann",
        subject="Welcome",
        html="<p>Hi</p>",
        text="Hi",
        headers={"List-Unsubscribe": "<https://x/u>"},
        enrollment_id="wf-1",
        customer_id="acme",
    )


def test_same_outbox_key_twice_gives_one_row(session: Session) -> None:
    message, created = _outbox(session)
    again, created_again = _outbox(session)
    session.commit()

    assert (created, created_again) == (True, False)
    assert again.id == message.id
    assert (message.status, message.attempts, message.contact_email) == (
        "captured",
        0,
        "ann@acme.io",
    )
    assert _count(session, OutboxMessage) == 1


def test_concurrent_outbox_inserts_give_one_row(db_url: str) -> None:
    results = _race(db_url, lambda session: _outbox(session)[1])

    assert sorted(results) == [False] * 7 + [True]
    with session_factory(db_url)() as session:
        assert _count(session, OutboxMessage) == 1


def test_outbox_status_updates(session: Session) -> None:
    _outbox(session)
    sent = repo.update_outbox_status(
        session,
        "wf-1/welcome/ann@acme.io",
        "sent",
        provider_message_id="sg-123",
        sent_at=NOW,
        count_attempt=True,
    )
    assert (sent.status, sent.attempts, sent.sent_at) == ("sent", 1, NOW)

    delivered = repo.update_outbox_status(session, "wf-1/welcome/ann@acme.io", "delivered")

    assert (delivered.status, delivered.provider_message_id) == ("delivered", "sg-123")
    assert delivered.attempts == 1
    found = repo.get_outbox_by_provider_message_id(session, "sg-123")
    assert found is not None and found.id == sent.id
    assert repo.get_outbox(session, "other") is None
    with pytest.raises(repo.NotFoundError):
        repo.update_outbox_status(session, "other", "sent")


def test_suppression_blocks_any_capitalisation(session: Session) -> None:
    assert repo.is_suppressed(session, "ann@acme.io") is False

    assert repo.suppress(session, "Ann@Acme.io", "bounce", source="sendgrid") is True
    assert repo.suppress(session, "ann@acme.io", "unsubscribe") is False

    assert repo.is_suppressed(session, "ANN@ACME.IO") is True
    assert repo.is_suppressed(session, "bob@acme.io") is False


def test_suppression_marks_contacts_unsubscribed(session: Session) -> None:
    repo.upsert_customer(session, _acme(contacts=[{"email": "ann@acme.io"}]))
    repo.upsert_customer(
        session, repo.CustomerData(id="beta", name="Beta", contacts=[{"email": "ann@acme.io"}])
    )

    repo.suppress(session, "ann@acme.io", "spam report")

    for customer_id in ("acme", "beta"):
        customer = repo.get_customer(session, customer_id)
        assert customer is not None
        assert customer.contacts[0].unsubscribed is True
        assert customer.contacts[0].unsubscribed_at is not None


# --- playbook versions, enrollments, webhooks ----------------------------------------------

PLAN = {"playbook": "onboarding", "steps": [{"id": "welcome", "email": {"template": "w"}}]}


def test_register_playbook_version_is_idempotent(session: Session) -> None:
    _, created = repo.register_playbook_version(
        session,
        playbook_id="onboarding",
        version="abc123",
        name="Onboarding",
        source="a",
        plan=PLAN,
    )
    again, created_again = repo.register_playbook_version(
        session,
        playbook_id="onboarding",
        version="abc123",
        name="Onboarding",
        source="a  # reformatted",
        plan=dict(PLAN),
    )

    assert (created, created_again) == (True, False)
    assert again.plan == PLAN and again.source == "a"


def test_same_version_with_another_plan_is_a_conflict(session: Session) -> None:
    repo.register_playbook_version(
        session, playbook_id="onboarding", version="abc123", name="O", source="a", plan=PLAN
    )

    with pytest.raises(repo.ConflictError):
        repo.register_playbook_version(
            session, playbook_id="onboarding", version="abc123", name="O", source="a", plan={}
        )


def test_upsert_enrollment_creates_then_updates_progress(session: Session) -> None:
    started = repo.upsert_enrollment(
        session,
        workflow_id="onboarding/acme",
        playbook_id="onboarding",
        version="abc123",
        customer_id="acme",
        current_step="welcome",
        started_at=NOW,
    )
    assert (started.status, started.current_step, started.started_at) == (
        "running",
        "welcome",
        NOW,
    )

    ended = repo.upsert_enrollment(
        session,
        workflow_id="onboarding/acme",
        playbook_id="onboarding",
        version="abc123",
        customer_id="acme",
        status="completed",
        outcome="converted",
        ended_at=NOW + timedelta(days=9),
    )

    assert (ended.status, ended.outcome, ended.current_step) == (
        "completed",
        "converted",
        "welcome",
    )
    assert ended.started_at == NOW
    assert ended.ended_at == NOW + timedelta(days=9)


def test_list_enrollments_is_newest_first_and_filtered(session: Session) -> None:
    for day, (playbook, customer, status) in enumerate(
        (
            ("onboarding", "acme", "completed"),
            ("onboarding", "zeta", "running"),
            ("qbr", "acme", "running"),
        )
    ):
        repo.upsert_enrollment(
            session,
            workflow_id=f"{playbook}/{customer}",
            playbook_id=playbook,
            version="abc123",
            customer_id=customer,
            status=status,
            started_at=NOW + timedelta(days=day),
        )

    def ids(**filters: str | None) -> list[str]:
        rows = repo.list_enrollments(session, limit=10, **filters)
        return [row.workflow_id for row in rows]

    assert ids() == ["qbr/acme", "onboarding/zeta", "onboarding/acme"]
    assert ids(playbook_id="onboarding") == ["onboarding/zeta", "onboarding/acme"]
    assert ids(customer_id="acme", status="running") == ["qbr/acme"]
    assert [row.workflow_id for row in repo.list_enrollments(session, limit=1)] == ["qbr/acme"]


def test_webhook_events_are_deduplicated(session: Session) -> None:
    assert repo.record_webhook_event(session, "sg-evt-1") is True
    assert repo.record_webhook_event(session, "sg-evt-1") is False
    assert repo.record_webhook_event(session, "sg-evt-2") is True


def test_latest_plan_is_the_most_recently_registered_version(session: Session) -> None:
    assert repo.latest_plan(session, "onboarding") is None
    for version, steps in (("v1", []), ("v2", [{"id": "welcome"}])):
        repo.register_playbook_version(
            session,
            playbook_id="onboarding",
            version=version,
            name="Onboarding",
            source="...",
            plan={"steps": steps},
        )

    assert repo.latest_plan(session, "onboarding") == {"steps": [{"id": "welcome"}]}
    latest = repo.latest_playbook_version(session, "onboarding")
    assert latest is not None and latest.version == "v2"


def test_identifying_arguments_can_be_passed_positionally(session: Session) -> None:
    """The call style activities use: ids and key fields first, options by keyword."""
    assert repo.record_event(session, "e1", "acme", "login", NOW, {"n": 1}, status="applied")
    task, _ = repo.create_task(session, "key-1", "Call Acme", outcomes=["held"])
    done = repo.complete_task(session, task.id, "held", "csm@example.com")
    message, _ = repo.insert_outbox(session, "out-1", "ann@acme.io", "Hello", text="Hi")

    assert (done.status, done.completed_by) == ("completed", "csm@example.com")
    assert (message.subject, message.text) == ("Hello", "Hi")


def test_completing_a_task_cancels_its_open_escalations(session: Session) -> None:
    original, _ = repo.create_task(session, "k1", "Kickoff", outcomes=["held"])
    escalation, _ = repo.create_task(
        session,
        "k1:escalation",
        "Escalation: Kickoff",
        escalation_of=original.id,
        outcomes=["done"],
    )
    other, _ = repo.create_task(session, "k2", "Unrelated", outcomes=["done"])

    repo.complete_task(session, original.id, "held", "csm@vendor.example")

    closed = repo.get_task(session, escalation.id)
    assert closed is not None and closed.status == "cancelled"
    assert "completed" in (closed.note or "")
    untouched = repo.get_task(session, other.id)
    assert untouched is not None and untouched.status == "open"


@pytest.mark.parametrize(
    "email",
    [
        '"><img/src=x/onerror=alert(1)>@xss.example',
        '"quoted"@acme.example',
        "Ann <ann@acme.example>",
        "ann@[127.0.0.1]",
        "ann@acme.example\r\nBcc: all@evil.example",
    ],
)
def test_the_store_refuses_what_is_not_a_plain_address(email: str) -> None:
    with pytest.raises(ValidationError, match="not an email address"):
        repo.ContactData(email=email)


def test_the_store_refuses_line_breaks_in_what_reaches_email_headers() -> None:
    with pytest.raises(ValidationError, match="one line"):
        repo.ContactData(email="ann@acme.example", first_name="Ann\r\nBcc: all@evil.example")
    with pytest.raises(ValidationError, match="one line"):
        repo.CustomerData(id="c", name="Acme\nSubject: x")
    assert repo.ContactData(email=" Ann@Acme.Example ").email == "ann@acme.example"
