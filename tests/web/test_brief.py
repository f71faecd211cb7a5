"""The QBR brief: usage by event over the last quarter, health, renewal, open tasks, emails."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.store import repository
from engine.web.brief import build_brief
from tests.helpers.browser import CSM_A, Browser, Stack

NOW = datetime(2026, 12, 10, 15, 0, tzinfo=UTC)


def seed_account(sessions: sessionmaker[Session], customer_id: str, now: datetime) -> str:
    """A customer with a quarter of usage, an older quarter, tasks and seven emails.

    Returns the id of its QBR task.
    """
    with sessions.begin() as session:
        repository.upsert_customer(
            session,
            repository.CustomerData(
                id=customer_id,
                name="Hoshino Logistics",
                segment="enterprise",
                owner_email=CSM_A,
                health_score=46,
                renewal_date=date(2027, 3, 1),
            ),
        )
        usage = [("report.created", 5, 10), ("user.invited", 3, 40), ("report.created", 2, 120)]
        usage += [("dashboard.shared", 1, 100), ("alert.created", 4, 200)]
        for name, count, days_ago in usage:
            for i in range(count):
                repository.record_event(
                    session,
                    f"{customer_id}-{name}-{days_ago}-{i}",
                    customer_id,
                    name,
                    now - timedelta(days=days_ago, minutes=i),
                )
        repository.record_milestone(
            session, customer_id=customer_id, milestone="first_value", at=now - timedelta(days=60)
        )
        qbr, _ = repository.create_task(
            session,
            f"{customer_id}:qbr",
            "Prepare QBR for Hoshino Logistics",
            customer_id=customer_id,
            playbook_id="qbr",
            step_id="prepare",
            assignee_email=CSM_A,
            due_at=now + timedelta(days=7),
            outcomes=["scheduled", "declined", "postponed"],
            description="Schedule this quarter's business review.",
        )
        repository.create_task(
            session,
            f"{customer_id}:save",
            "Save plan for Hoshino Logistics",
            customer_id=customer_id,
            playbook_id="renewal",
            assignee_email=CSM_A,
            priority="urgent",
        )
        closed, _ = repository.create_task(
            session, f"{customer_id}:closed", "Already done", customer_id=customer_id
        )
        repository.complete_task(session, closed.id, "done", CSM_A)
        for i in range(7):
            message, _ = repository.insert_outbox(
                session,
                f"{customer_id}:mail:{i}",
                "ops@hoshino.example",
                f"Email number {i}",
                customer_id=customer_id,
                playbook_id="renewal",
            )
            message.created_at = now - timedelta(days=7 - i)
        return qbr.id


def test_brief_counts_the_last_quarter_and_lists_the_context(
    sessions: sessionmaker[Session],
) -> None:
    qbr = seed_account(sessions, "hoshino", NOW)
    with sessions() as session:
        brief = build_brief(session, "hoshino", now=NOW, exclude_task=qbr)
        assert build_brief(session, "nobody", now=NOW) is None
    assert brief is not None
    assert [(u.name, u.count, u.previous) for u in brief.usage] == [
        ("report.created", 5, 2),
        ("user.invited", 3, 0),
        ("dashboard.shared", 0, 1),
    ]  # alert.created (200 days ago) is older than both quarters
    assert (brief.total_events, brief.previous_total) == (8, 3)
    assert (brief.health_score, brief.health_band) == (46, "at risk")
    assert (brief.renewal_date, brief.days_to_renewal) == (date(2027, 3, 1), 81)
    assert [t.title for t in brief.open_tasks] == ["Save plan for Hoshino Logistics"]
    assert [m.subject for m in brief.recent_emails] == [
        f"Email number {i}" for i in range(6, 1, -1)
    ]
    assert [name for name, _ in brief.milestones] == ["first_value"]


def test_the_qbr_task_page_shows_the_brief(stack: Stack, browser: Browser) -> None:
    customer_id = f"qbr-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    qbr = seed_account(stack.sessions, customer_id, now)
    browser.login(CSM_A)
    browser.get(f"/tasks/{qbr}")
    brief = browser.wait_for("#brief")
    usage = [
        row.text.split() for row in brief.find_elements("css selector", "table.usage tbody tr")
    ]
    assert usage == [
        ["report.created", "5", "2", "+3"],
        ["user.invited", "3", "0", "+3"],
        ["dashboard.shared", "0", "1", "-1"],
    ]
    text = brief.text
    for expected in (
        "46",
        "Yellow",  # the shipped scorecard's band (red < 40), not the triage's "at risk"
        "2027-03-01",
        "Save plan for Hoshino Logistics",
        "First value",
    ):
        assert expected in text
    assert "Email number 6" in text and "Email number 1" not in text
    assert [b.text for b in browser.find_all("form.complete button[name=outcome]")] == [
        "Scheduled",
        "Declined",
        "Postponed",
    ]
    browser.screenshot("qbr-task")
