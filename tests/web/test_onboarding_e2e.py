"""The acceptance path: an event starts onboarding, a CSM completes the kickoff in the browser.

Everything is real: the API takes the events, the dev server runs the interpreter, the worker
captures the emails in the store, and Chromium logs in and clicks the outcome button. The
customer's time zone is chosen so that 'now' is a weekday business hour there, so the
onboarding emails (send window Mon-Fri 09:00-17:00) go out at once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from engine.store import repository
from engine.store.models import Enrollment, OutboxMessage, Task
from tests.helpers.browser import CSM_A, Browser, Stack
from tests.helpers.polling import wait_until

EARLIEST, LATEST = 9 * 60 + 10, 16 * 60 + 15  # minutes of the local day, inside the window


def business_hours_zone(now: datetime) -> str | None:
    """A fixed-offset zone (Etc/GMT±N) where ``now`` is a weekday between 09:10 and 16:15.

    Between them, UTC-12 to UTC+14 cover 27 hours, so only around weekends is there none.
    """
    best: tuple[int, int] | None = None
    for hours in range(-12, 15):
        local = now + timedelta(hours=hours)
        minute = local.hour * 60 + local.minute
        if local.weekday() < 5 and EARLIEST <= minute <= LATEST:
            score = abs(minute - (EARLIEST + LATEST) // 2)
            if best is None or score < best[0]:
                best = (score, hours)
    if best is None:
        return None
    hours = best[1]
    return "UTC" if hours == 0 else f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-5 is UTC+5


def test_business_hours_zone_is_a_weekday_working_hour() -> None:
    from zoneinfo import ZoneInfo

    monday_noon_utc = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    zone = business_hours_zone(monday_noon_utc)
    assert zone is not None
    local = monday_noon_utc.astimezone(ZoneInfo(zone))
    assert local.weekday() < 5 and 9 <= local.hour < 17
    assert business_hours_zone(datetime(2026, 11, 28, 12, 0, tzinfo=UTC)) is None  # Saturday


def post_event(
    api: httpx.Client, customer_id: str, name: str, properties: dict[str, Any] | None = None
) -> None:
    body = {
        "id": f"{customer_id}-{name}",
        "customer_id": customer_id,
        "name": name,
        "properties": properties or {},
    }
    response = api.post("/api/events", json=body)
    assert response.status_code == 202, response.text


def _welcome_emails(stack: Stack, customer_id: str) -> list[OutboxMessage]:
    with stack.sessions() as session:
        return list(
            session.scalars(
                select(OutboxMessage).where(
                    OutboxMessage.customer_id == customer_id, OutboxMessage.step_id == "welcome"
                )
            )
        )


def _enrollments(stack: Stack, customer_id: str) -> list[tuple[str, str, str | None]]:
    with stack.sessions() as session:
        rows = session.scalars(select(Enrollment).where(Enrollment.customer_id == customer_id))
        return [(e.workflow_id, e.status, e.current_step) for e in rows]


def _open_task(stack: Stack, customer_id: str, step: str) -> Task | None:
    with stack.sessions() as session:
        return session.scalars(
            select(Task).where(
                Task.customer_id == customer_id, Task.step_id == step, Task.status == "open"
            )
        ).first()


def test_event_to_browser_completion_moves_the_enrollment_on(
    stack: Stack, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    zone = business_hours_zone(datetime.now(UTC))
    if zone is None:
        pytest.skip("no time zone has a weekday business hour right now (weekend everywhere)")
    # The enrollment holds a completion for the undo window before it moves on: 3 s here,
    # not the stack's 30 s (which the undo tests need), so the test does not wait it out.
    assert stack.services is not None
    monkeypatch.setattr(stack.services.settings, "task_undo_seconds", 3)
    customer_id = f"e2e-{uuid.uuid4().hex[:8]}"
    name = f"Quokka Freight {customer_id[-4:]}"
    with stack.api() as api:
        put = api.put(
            f"/api/customers/{customer_id}",
            json={
                "name": name,
                "segment": "enterprise",
                "timezone": zone,
                "owner": CSM_A,
                "health_score": 72,
                "contacts": [
                    {"email": f"it@{customer_id}.example", "first_name": "Ida", "role": "admin"},
                    {"email": f"cx@{customer_id}.example", "first_name": "Cy", "role": "champion"},
                ],
            },
        )
        assert put.status_code == 200, put.text
        post_event(api, customer_id, "customer.created")

        # Onboarding starts and the welcome email is captured for the admin and the champion.
        emails = wait_until(
            lambda: len(found := _welcome_emails(stack, customer_id)) == 2 and found,
            what="the welcome emails in the outbox",
            context=lambda: _enrollments(stack, customer_id),
        )
        assert {m.status for m in emails} == {"captured"}
        enrollment_id = emails[0].enrollment_id
        assert enrollment_id
        task = wait_until(
            lambda: _open_task(stack, customer_id, "kickoff"),
            what="the kickoff task",
            context=lambda: stack.status(enrollment_id),
        )
        assert task.assignee_email == CSM_A
        assert stack.status(enrollment_id).current_step == "kickoff"

        # The owner CSM logs in, finds the kickoff in the inbox and holds it.
        browser.login(CSM_A)
        assert browser.driver.current_url.endswith("/inbox")
        row = browser.find(f'tr[data-task="{task.id}"]')
        assert f"Kickoff call with {name}" in row.text
        browser.screenshot("inbox")
        browser.click_and_load(row.find_element("css selector", "a.task-title"))
        browser.wait_for("form.complete")
        assert name in browser.text("aside")
        # In the CSM's words: the playbook's name and the step's, and the enrollment's
        # second deadline named for what it is (the task escalates then).
        assert "New customer onboarding · Kickoff" in browser.text("dl.facts")
        enrollment_card = browser.find(f'[data-enrollment="{enrollment_id}"]')
        assert "Escalates" in enrollment_card.text and "deadline" not in enrollment_card.text
        assert f"the task “Kickoff call with {name}” to be completed" in enrollment_card.text
        browser.find("textarea[name=note]").send_keys("Kickoff done, data source next week.")
        browser.click_and_load(browser.find('button[name=outcome][value="held"]'))
        flash = browser.wait_for(".flash")
        assert "Completed" in flash.text and "held" in flash.text
        assert not browser.find_all(f'tr[data-task="{task.id}"]')  # no longer open

        # The enrollment continues: it now waits for the integration milestone. (It enters
        # the step, records it in the store, then starts waiting: a status read in between
        # names the step and no wait yet.)
        status = wait_until(
            lambda: (
                (s := stack.status(enrollment_id)).current_step == "await_integration"
                and s.waiting_for is not None
                and s
            ),
            what="the enrollment to move past the kickoff",
            context=lambda: stack.status(enrollment_id),
        )
        assert status.waiting_for == "milestone integration_connected"
        with stack.sessions() as session:
            done = session.get(Task, task.id)
            assert done is not None
            assert (done.status, done.outcome, done.completed_by) == ("completed", "held", CSM_A)
            assert done.note == "Kickoff done, data source next week."
        browser.get(f"/customers/{customer_id}")
        card = browser.find(f'[data-enrollment="{enrollment_id}"]')
        assert card.find_element("css selector", ".current-step").text == "Await integration"
        assert "the milestone “Integration connected”" in card.text
        assert "Stops waiting" in card.text

        # The milestone event ends the wait and the playbook invites the team. The welcome
        # email went out today, and the shipped policy allows one email a day per contact
        # (playbooks/policies.yaml), so the invitation waits for tomorrow's send window.
        post_event(api, customer_id, "integration.connected", {"source": "snowflake"})
        status = wait_until(
            lambda: (s := stack.status(enrollment_id)).waiting_for == "delivery policy" and s,
            what="the enrollment to move past its wait for the integration",
            context=lambda: stack.status(enrollment_id),
        )
        assert "integration_connected" in status.milestones
        assert status.current_step == "invite_team"
        waits = [r.detail for r in status.records if r.step == "invite_team" and r.kind == "wait"]
        assert waits and "cap of 1 email a day reached" in waits[-1]
        kinds = [(r.step, r.kind) for r in status.records]
        assert ("kickoff", "task_completed") in kinds
    with stack.sessions() as session:
        row = repository.latest_enrollment(session, enrollment_id)
        assert row is not None and row.status == "running"

    # The customer page shows the new wait and the whole story in its timeline.
    browser.get(f"/customers/{customer_id}")
    card = browser.find(f'[data-enrollment="{enrollment_id}"]')
    assert card.find_element("css selector", ".current-step").text == "Invite team"
    timeline = browser.text("ol.timeline")
    for expected in (
        "Reached “Integration connected”",
        f"Kickoff call with {name}: Held",
        "Started “New customer onboarding”",
        "Health 72",
    ):
        assert expected in timeline
    # Raw usage events are folded away below the story.
    assert "customer.created" not in timeline
    browser.find("details.usage summary").click()
    assert "integration.connected" in browser.text("details.usage")
    browser.screenshot("customer")
    browser.get("/enrollments")
    funnel = browser.find('[data-playbook="onboarding"]')
    assert funnel.find_element("css selector", '[data-step="invite_team"] .count').text != "0"
    browser.screenshot("enrollments")
