"""Signals, updates and the status query: what operators and the event router rely on."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from engine.language.workdays import WorkCalendar
from engine.messages import CancelRequest, EnrollmentSnapshot, SkipRequest
from tests.helpers.harness import ADMIN_AND_CHAMPION, records
from tests.helpers.onboarding import AWAIT_INTEGRATION, AWAIT_TEAM, hold_kickoff, kickoff_task


async def _update(handle, name: str, arg=None) -> EnrollmentSnapshot:
    args = [] if arg is None else [arg]
    return await handle.execute_update(name, args=args, result_type=EnrollmentSnapshot)


async def test_the_same_event_twice_counts_once(onboarding):
    # team_invited needs three user.invited events.
    async with onboarding(segment="smb") as (h, handle):
        await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))
        await h.event(handle, "integration.connected")
        await h.until_waiting(handle, AWAIT_TEAM, step=timedelta(hours=2))

        first = await h.event(handle, "user.invited", {"email": "x@acme.example"})
        await h.event(handle, "user.invited", {"email": "y@acme.example"})
        await h.event(handle, "user.invited", {"email": "x@acme.example"}, event_id=first.id)
        status = await h.settle(handle)
        assert status.current_step == "await_team"
        assert status.waiting_for == AWAIT_TEAM
        assert "team_invited" not in status.milestones
        assert len([r for r in records(status, "event") if r.detail == "user.invited"]) == 2

        await h.event(handle, "user.invited", {"email": "z@acme.example"})
        status = await h.until_status(
            handle,
            lambda s: s.current_step != "await_team",
            step=timedelta(hours=2),
            limit=timedelta(days=4),
        )
        assert "team_invited" in status.milestones
        [reached] = records(status, "milestone", "await_team")
        assert reached.detail == "team_invited reached"


async def test_status_query_says_what_the_enrollment_waits_for_and_until_when(onboarding):
    async with onboarding() as (h, handle):
        kickoff = await kickoff_task(h)
        status = await h.status(handle)
        created = records(status, "task", "kickoff")[0].at
        assert status.current_step == "kickoff"
        assert status.waiting_for == "task 'Kickoff call with Acme Corp'"
        # Waiting on the task until it escalates, 5 working days after it was created.
        assert status.waiting_until is not None
        escalates = WorkCalendar().add(created, 5 * 86_400)
        assert abs(status.waiting_until - escalates) < timedelta(seconds=1)
        assert status.steps_done == 1
        assert status.outcome is None

        await h.complete(handle, kickoff.id, "held")
        status = await h.until_waiting(handle, AWAIT_INTEGRATION)
        assert status.current_step == "await_integration"
        started = records(status, "wait", "await_integration")[-1]
        assert status.waiting_until is not None
        assert status.waiting_until.isoformat() == started.data["until"]
        assert status.steps_done == 2


async def test_pause_holds_the_next_step_and_resume_continues(temporal_env, onboarding):
    async with onboarding(segment="smb") as (h, handle):
        await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))

        paused = await _update(handle, "pause")
        assert paused.paused
        with pytest.raises(WorkflowUpdateFailedError):
            await _update(handle, "pause")

        # The wait keeps its deadline; the nudge that follows is held.
        await temporal_env.sleep(timedelta(days=9))
        status = await h.settle(handle)
        assert status.paused
        assert status.current_step == "nudge_integration"
        assert records(status, "timeout", "await_integration")
        assert not h.outbox("nudge_integration")

        resumed = await _update(handle, "resume")
        assert not resumed.paused
        with pytest.raises(WorkflowUpdateFailedError):
            await _update(handle, "resume")
        nudges = await h.until_emailed(handle, "nudge_integration")
        assert {m.contact_email for m in nudges} == ADMIN_AND_CHAMPION


async def test_skip_to_step_leaves_the_wait_and_rejects_unknown_steps(onboarding):
    async with onboarding(segment="smb") as (h, handle):
        await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))

        with pytest.raises(WorkflowUpdateFailedError) as bad:
            await _update(handle, "skip_to_step", SkipRequest(step="no_such_step"))
        assert "no_such_step" in str(bad.value.cause)
        assert (await h.status(handle)).current_step == "await_integration"

        await _update(handle, "skip_to_step", SkipRequest(step="invite_team", reason="done live"))
        status = await h.until_waiting(handle, AWAIT_TEAM, step=timedelta(hours=2))
        [skip] = records(status, "skip", "await_integration")
        assert skip.detail == "skipped to invite_team"
        assert {m.contact_email for m in h.outbox("invite_team")} == ADMIN_AND_CHAMPION
        assert not h.outbox("nudge_integration")

        await _update(handle, "skip_to_step", SkipRequest(step="end"))
        result = await h.result(handle)
    assert result.outcome == "completed"
    assert not h.outbox("check_in")


async def test_cancel_stops_the_enrollment_and_cancels_its_tasks(onboarding):
    async with onboarding() as (h, handle):
        kickoff = await kickoff_task(h)
        await _update(handle, "cancel", CancelRequest(reason="customer asked", by="ops@x.example"))
        result = await h.result(handle)

    assert (result.outcome, result.status) == ("cancelled", "cancelled")
    assert result.reason == "customer asked"
    assert h.task(kickoff.id).status == "cancelled"
    assert h.stored_end(handle.id) == ("cancelled", "cancelled")


async def test_exit_event_ends_a_paused_enrollment(temporal_env, onboarding):
    async with onboarding() as (h, handle):
        await hold_kickoff(h, handle)
        await _update(handle, "pause")
        await temporal_env.sleep(timedelta(days=8))  # the wait ends; the pause holds
        await h.event(handle, "customer.churned")
        result = await h.result(handle, timeout=10)

    assert result.outcome == "exited"
    assert not h.outbox("nudge_integration")
