"""Renewal: 120 days of triage, reminders and escalation, in a few seconds of real time."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from engine.language.workdays import WorkCalendar
from tests.helpers.harness import MANAGER, OWNER, local, records, running, seed_customer

ZONE = "America/Los_Angeles"
CONTACTS = [
    {"email": "ada@acme.example", "first_name": "Ada", "role": "admin"},
    {"email": "sue@acme.example", "first_name": "Sue", "role": "sponsor"},
    {"email": "carl@acme.example", "first_name": "Carl", "role": "champion"},
]
ADMIN_AND_SPONSOR = {"ada@acme.example", "sue@acme.example"}


def renewal_date(today: date) -> date:
    """About 120 days out, moved so that 90, 60 and 30 days before fall on weekdays (the
    reminders then go out at 10:00 sharp, not when the weekend's send window opens)."""
    candidate = today + timedelta(days=120)
    while any((candidate - timedelta(days=d)).weekday() >= 5 for d in (90, 60, 30)):
        candidate += timedelta(days=1)
    return candidate


async def _seed(h_env, sessions, customer_id: str, health: int | None) -> date:
    today = local(await h_env.get_current_time(), ZONE).date()
    renews = renewal_date(today)
    seed_customer(
        sessions, customer_id, timezone=ZONE, health=health, renewal=renews, contacts=CONTACTS
    )
    return renews


async def test_healthy_account_hears_at_90_60_30_days_then_the_manager_is_escalated(
    temporal_env, sessions, task_queue, project, customer_id
):
    renews = await _seed(temporal_env, sessions, customer_id, health=90)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("renewal"))
        result = await h.result(handle)

    assert result.outcome == "not_renewed"
    [triage] = records(result, "branch", "triage")
    assert triage.data["goto"] == "wait_90"
    assert not h.tasks("risk_alert") and not h.tasks("save_plan") and not h.tasks("watch_review")
    assert not h.outbox("risk_alert")

    for step, days in (("email_90", 90), ("email_60", 60), ("email_30", 30)):
        [sent] = records(result, "email", step)
        at = local(sent.at, ZONE)
        assert at.date() == renews - timedelta(days=days), (step, at)
        assert (at.hour, at.minute) == (10, 0), (step, at)
        assert {m.contact_email for m in h.outbox(step)} == ADMIN_AND_SPONSOR

    [call] = h.tasks("renewal_call")
    assert call.assignee_email == OWNER
    assert call.due_at is not None
    # Due 14 working days after it was created, on the owner's calendar (Monday to Friday).
    [call_created] = records(result, "task", "renewal_call")
    assert abs(call.due_at - WorkCalendar().add(call_created.at, 14 * 86_400)) < timedelta(
        minutes=1
    )

    [overdue] = h.tasks("overdue_escalation")
    assert overdue.assignee_email == MANAGER
    assert overdue.priority == "urgent"
    assert overdue.status == "open"  # the enrollment's end does not withdraw it
    [created] = records(result, "task", "overdue_escalation")
    assert local(created.at, ZONE).date() == renews - timedelta(days=30)

    [ended] = records(result, "completed")
    assert local(ended.at, ZONE).date() == renews + timedelta(days=1)


@pytest.mark.parametrize(
    ("health", "first_task"),
    [(60, "watch_review"), (None, "watch_review")],
)
async def test_watch_accounts_get_a_review_task(
    temporal_env, sessions, task_queue, project, customer_id, health, first_task
):
    await _seed(temporal_env, sessions, customer_id, health=health)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("renewal"))
        status = await h.until_step(handle, "wait_90", step=timedelta(hours=1))

    [review] = h.tasks(first_task)
    assert review.assignee_email == OWNER
    assert status.waiting_for == "time"
    assert not h.tasks("save_plan")
    assert not h.outbox()


@pytest.mark.parametrize(
    ("outcome", "then"),
    [("save_plan_agreed", "wait_90"), ("escalated", "wait_90"), ("lost", "lost")],
)
async def test_at_risk_account_alerts_the_manager_and_asks_for_a_save_plan(
    temporal_env, sessions, task_queue, project, customer_id, outcome, then
):
    renews = await _seed(temporal_env, sessions, customer_id, health=30)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("renewal"))
        [save_plan] = await h.until(lambda: h.tasks("save_plan"))

        # The alert goes to the owner's manager at once (send_window: anytime).
        [alert] = h.outbox("risk_alert")
        assert alert.contact_email == MANAGER
        assert alert.status == "captured"
        assert save_plan.assignee_email == OWNER
        assert save_plan.priority == "urgent"
        assert str(renews) in (save_plan.description or "")
        assert "health score of 30" in (save_plan.description or "")

        await h.complete(handle, save_plan.id, outcome)
        if then == "lost":
            result = await h.result(handle)
            assert result.outcome == "lost"
            assert not [m for m in h.outbox() if m.step_id != "risk_alert"]
            return
        status = await h.until_step(handle, then, step=timedelta(hours=1))

    assert status.waiting_for == "time"
    escalations = h.tasks("executive_escalation")
    if outcome == "escalated":
        [escalation] = escalations
        assert escalation.assignee_email == MANAGER
    else:
        assert not escalations


async def test_contract_renewed_mid_wait_ends_the_enrollment(
    temporal_env, sessions, task_queue, project, customer_id
):
    await _seed(temporal_env, sessions, customer_id, health=90)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("renewal"))
        await h.until_step(handle, "wait_60", step=timedelta(days=1))
        await temporal_env.sleep(timedelta(days=5))
        await h.event(handle, "contract.renewed", {"term_months": 12})
        result = await h.result(handle)

    assert (result.outcome, result.status) == ("goal_reached", "goal_reached")
    assert result.ended_at_step == "wait_60"
    assert {m.step_id for m in h.outbox()} == {"email_90"}
    assert not h.tasks("renewal_call")
    assert not h.tasks("overdue_escalation")
    assert h.stored_end(handle.id) == ("goal_reached", "goal_reached")
