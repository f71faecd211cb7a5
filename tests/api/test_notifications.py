"""Task notifications against local stand-ins: Slack and a signed webhook get one delivery
per task event (retried when the receiver fails), and members one digest email a day
through the real SendGrid client and the outbox."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from activities.mailer import CaptureMailer, SendGridMailer
from activities.notifier import SIGNATURE_HEADER, HttpNotifier, signature
from engine.services.notifications import notify_team
from engine.settings import Settings
from engine.store import repository
from engine.store.db import migrate, session_factory
from engine.store.models import Notification, OutboxMessage, Task, TeamMember
from tests.helpers.sendgrid_standin import SendGridStandIn
from tests.helpers.webhook_standin import WebhookStandIn

SECRET = b"webhook-secret"
CSM = "csm@vendor.example"


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    url = f"sqlite:///{tmp_path / 'notify.db'}"
    migrate(url)
    return session_factory(url)


@pytest.fixture
def hooks() -> Iterator[WebhookStandIn]:
    with WebhookStandIn() as standin:
        yield standin


@pytest.fixture
def sendgrid() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


def test_each_task_event_reaches_each_channel_once_and_members_get_one_digest(
    sessions: sessionmaker[Session], hooks: WebhookStandIn, sendgrid: SendGridStandIn
) -> None:
    now = datetime(2027, 3, 3, 7, 0, tzinfo=UTC)  # Wednesday, 08:00 in Berlin
    with sessions.begin() as session:
        session.add(TeamMember(email=CSM, name="Casey", timezone="Europe/Berlin"))
        due, _ = repository.create_task(
            session, "k1", "Kickoff call", assignee_email=CSM, due_at=now + timedelta(hours=5)
        )
        later, _ = repository.create_task(
            session, "k2", "QBR prep", assignee_email=CSM, due_at=now + timedelta(days=3)
        )
        repository.create_task(
            session, "k3", "Escalation: renewal", assignee_email=CSM, escalation_of=later.id
        )
        repository.create_task(session, "k4", "Nobody's", assignee_email="gone@vendor.example")
        session.flush()
        for task in session.scalars(select(Task)):
            task.created_at = now - timedelta(hours=2)
    settings = Settings(
        slack_webhook_url=SecretStr(f"{hooks.url}/slack"),
        notify_webhook_url=f"{hooks.url}/hook",
        public_base_url="https://cs.example",
    )
    notifier = HttpNotifier(SECRET)
    mailer = SendGridMailer(sendgrid.api_key, sendgrid.url)
    hooks.fail_next(500, 503)  # the first event's Slack post is retried twice

    report = notify_team(sessions, settings, notifier, mailer, now, retry_delay=0)

    # 3 tasks of the team's member: 3 'new', 1 'due_today', 1 'escalated'; 2 channels each.
    assert report.deliveries == {"sent": 10} and not report.failed
    assert len(hooks.at("/slack")) == 5 and len(hooks.at("/hook")) == 5
    assert hooks.attempts == 12
    events = sorted(r.json["event"] for r in hooks.at("/hook"))
    assert events == ["task.due_today", "task.escalated", "task.new", "task.new", "task.new"]
    for request in hooks.at("/hook"):
        assert request.headers[SIGNATURE_HEADER] == signature(SECRET, request.body)
        assert request.headers["Idempotency-Key"].startswith("task:")
    assert any("Kickoff call" in r.json["text"] for r in hooks.at("/slack"))
    [digest] = sendgrid.requests
    assert digest.body["personalizations"][0]["to"][0]["email"] == CSM
    assert "1 escalated, 1 due today, 3 new" in digest.body["subject"]
    with sessions() as session:
        [outbox] = session.scalars(select(OutboxMessage)).all()
        assert (outbox.contact_email, outbox.status) == (CSM, "sent")
        assert "https://cs.example/tasks/" + due.id in (outbox.html or "")
        assert {n.attempts for n in session.scalars(select(Notification))} == {1, 3}

    again = notify_team(sessions, settings, notifier, mailer, now + timedelta(hours=1))
    assert again.deliveries == {"sent": 10} and again.digests == 0
    assert len(hooks.requests) == 10 and len(sendgrid.requests) == 1  # nothing twice


def test_a_receiver_that_keeps_failing_is_left_for_the_next_run(
    sessions: sessionmaker[Session], hooks: WebhookStandIn
) -> None:
    now = datetime(2027, 3, 3, 7, 0, tzinfo=UTC)
    with sessions.begin() as session:
        session.add(TeamMember(email=CSM, name="Casey"))
        repository.create_task(session, "k1", "Kickoff call", assignee_email=CSM)
    settings = Settings(notify_webhook_url=f"{hooks.url}/hook")
    hooks.fail_next(500, 500, 500)
    notifier, mailer = HttpNotifier(SECRET), CaptureMailer()
    report = notify_team(sessions, settings, notifier, mailer, now, retry_delay=0)
    assert report.failed and not hooks.requests
    report = notify_team(sessions, settings, notifier, mailer, now, retry_delay=0)
    assert report.deliveries == {"sent": 1} and len(hooks.requests) == 1
