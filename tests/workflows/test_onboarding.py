"""Onboarding, walked through its paths on the time-skipping server with the real store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.helpers.harness import (
    ADMIN_AND_CHAMPION,
    MANAGER,
    OWNER,
    in_window,
    records,
)
from tests.helpers.onboarding import (
    AWAIT_INTEGRATION,
    AWAIT_TEAM,
    KICKOFF,
    hold_kickoff,
    kickoff_task,
)

WEEKDAYS = (0, 1, 2, 3, 4)
OFFICE_HOURS = (9, 17)


@pytest.mark.parametrize("delivery", ["signalled", "stored_only"])
async def test_integration_connected_before_the_wait_passes_it_at_once(onboarding, delivery):
    # The event arrives while the CSM's kickoff task is still open. Signalled, the
    # workflow's tracker notes it; only stored (the signal was lost), check_milestone finds
    # it. Either way the wait_for must not wait, and no nudge goes out.
    async with onboarding() as (h, handle):
        kickoff = await kickoff_task(h)
        await h.event(handle, "integration.connected", signal=delivery == "signalled")
        await h.complete(handle, kickoff.id, "held")

        status = await h.until_waiting(handle, AWAIT_TEAM, step=timedelta(hours=2))
        [reached] = records(status, "milestone", "await_integration")
        assert reached.detail == "integration_connected already reached"
        assert not records(status, "wait", "await_integration")
        assert not h.outbox("nudge_integration")
        assert {m.contact_email for m in h.outbox("invite_team")} == ADMIN_AND_CHAMPION


async def test_integration_connected_during_the_wait_ends_it_before_the_timeout(
    temporal_env, onboarding
):
    async with onboarding() as (h, handle):
        waiting = await hold_kickoff(h, handle)
        started = records(waiting, "wait", "await_integration")[-1].at
        assert waiting.current_step == "await_integration"
        assert waiting.waiting_until is not None
        assert abs(waiting.waiting_until - (started + timedelta(days=7))) < timedelta(seconds=1)

        await temporal_env.sleep(timedelta(days=3))
        await h.event(handle, "integration.connected")
        status = await h.until_waiting(handle, AWAIT_TEAM, step=timedelta(hours=2))

        [reached] = records(status, "milestone", "await_integration")
        assert reached.detail == "integration_connected reached"
        assert timedelta(days=3) <= reached.at - started < timedelta(days=4)
        assert "integration_connected" in status.milestones
        assert not h.outbox("nudge_integration")
        assert not h.tasks("integration_help")


async def test_integration_never_connected_nudges_inside_the_send_window_then_hands_over(
    onboarding,
):
    # Tokyo's office hours (09:00-17:00 JST) do not overlap UTC's, so a window computed in
    # the wrong zone fails this test.
    zone = "Asia/Tokyo"
    async with onboarding(timezone=zone) as (h, handle):
        kickoff = await kickoff_task(h)
        # Complete the kickoff outside office hours: the nudge falls due exactly 7 days
        # later, also outside them, and must wait for the window to open.
        await h.until(lambda: _outside_office_hours(h, zone), step=timedelta(hours=1))
        await h.complete(handle, kickoff.id, "held")
        waiting = await h.until_waiting(handle, AWAIT_INTEGRATION)
        deadline = waiting.waiting_until
        assert deadline is not None and not in_window(deadline, zone, WEEKDAYS, OFFICE_HOURS)

        result = await h.result(handle)

    assert result.outcome == "completed"
    [timeout] = records(result, "timeout", "await_integration")
    assert timeout.at >= deadline
    [window_wait] = records(result, "wait", "nudge_integration")
    assert window_wait.detail == "waiting for the send window"
    [nudge] = records(result, "email", "nudge_integration")
    assert nudge.at >= deadline
    assert in_window(nudge.at, zone, WEEKDAYS, OFFICE_HOURS), nudge.at
    assert {m.contact_email for m in h.outbox("nudge_integration")} == ADMIN_AND_CHAMPION
    assert all(m.status == "captured" for m in h.outbox())
    # Every customer email of the run went out on a weekday, in Tokyo office hours.
    for record in records(result, "email"):
        assert in_window(record.at, zone, WEEKDAYS, OFFICE_HOURS), (record.step, record.at)
    # A week after the nudge, still nothing: the CSM takes over.
    [help_task] = h.tasks("integration_help")
    assert help_task.assignee_email == OWNER
    assert help_task.title == "Help Acme Corp connect their data"
    steps = [r.step for r in records(result, "email")]
    assert steps == ["welcome", "nudge_integration", "invite_team", "check_in"]


async def _outside_office_hours(h, zone: str) -> bool:
    return not in_window(await h.now(), zone, WEEKDAYS, OFFICE_HOURS)


@pytest.mark.parametrize(
    ("outcome", "follow_up_email"),
    [("held", False), ("rescheduled", False), ("no_response", True)],
)
async def test_kickoff_outcome_routes(onboarding, outcome, follow_up_email):
    async with onboarding() as (h, handle):
        kickoff = await kickoff_task(h)
        assert kickoff.assignee_email == OWNER
        assert kickoff.priority == "high"
        assert kickoff.outcomes == ["held", "rescheduled", "no_response"]
        await h.complete(handle, kickoff.id, outcome)

        status = await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))
        [completed] = records(status, "task_completed", "kickoff")
        assert completed.detail == outcome
        follow_ups = h.outbox("kickoff_follow_up")
        if follow_up_email:
            assert {m.contact_email for m in follow_ups} == ADMIN_AND_CHAMPION
            [sent] = records(status, "email", "kickoff_follow_up")
            assert sent.at < records(status, "wait", "await_integration")[-1].at
        else:
            assert not follow_ups
        stored = h.task(kickoff.id)
        assert (stored.status, stored.outcome) == ("completed", outcome)

        await h.event(handle, "report.created")
        result = await h.result(handle)
    assert result.outcome == "goal_reached"


async def test_kickoff_left_open_escalates_to_the_managers_task_and_keeps_waiting(onboarding):
    async with onboarding() as (h, handle):
        kickoff = await kickoff_task(h)
        created = records(await h.status(handle), "task", "kickoff")[0].at

        def escalations():
            return [t for t in h.tasks() if t.escalation_of == kickoff.id]

        [escalation] = await h.until(escalations, step=timedelta(hours=6))
        assert escalation.assignee_email == MANAGER
        assert escalation.priority == "urgent"
        assert escalation.status == "open"
        assert "Kickoff call with Acme Corp" in escalation.title
        assert h.task(kickoff.id).escalated_at is not None
        status = await h.status(handle)
        [escalated] = records(status, "task_escalated", "kickoff")
        assert escalated.at - created >= timedelta(days=5)
        # Still waiting for the CSM, now until the task's timeout, 21 days after it began.
        assert (status.current_step, status.waiting_for) == ("kickoff", KICKOFF)
        assert status.waiting_until is not None
        assert abs(status.waiting_until - (created + timedelta(days=21))) < timedelta(seconds=1)

        await h.complete(handle, kickoff.id, "held")
        status = await h.until_waiting(handle, AWAIT_INTEGRATION)
        assert records(status, "task_completed", "kickoff")[0].detail == "held"
        assert len(escalations()) == 1


async def test_churned_mid_wait_exits_and_cancels_open_tasks(temporal_env, onboarding):
    async with onboarding() as (h, handle):
        kickoff = await kickoff_task(h)
        await temporal_env.sleep(timedelta(days=1))
        await h.event(handle, "customer.churned")
        result = await h.result(handle)

    assert (result.outcome, result.status) == ("exited", "exited")
    assert result.ended_at_step == "kickoff"
    assert h.task(kickoff.id).status == "cancelled"
    assert h.stored_end(handle.id) == ("exited", "exited")
    assert {m.step_id for m in h.outbox()} <= {"welcome"}


async def test_first_value_mid_wait_reaches_the_goal(temporal_env, onboarding):
    async with onboarding() as (h, handle):
        await hold_kickoff(h, handle)
        await temporal_env.sleep(timedelta(days=2))
        await h.event(handle, "report.created")
        result = await h.result(handle)

    assert (result.outcome, result.status) == ("goal_reached", "goal_reached")
    assert result.ended_at_step == "await_integration"
    assert h.stored_end(handle.id) == ("goal_reached", "goal_reached")
    assert not h.outbox("nudge_integration")


async def test_smb_customers_skip_the_kickoff(onboarding):
    async with onboarding(segment="smb") as (h, handle):
        status = await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))

    assert not h.tasks()
    [skipped] = records(status, "skipped", "kickoff")
    assert "customer.segment" in skipped.detail
    assert {m.contact_email for m in h.outbox("welcome")} == ADMIN_AND_CHAMPION
