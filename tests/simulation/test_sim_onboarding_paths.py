"""Acceptance: onboarding's milestones, goal, exit and task routes, as the simulator shows them."""

from __future__ import annotations

from datetime import time, timedelta

import pytest

from engine.simulation import ScheduledCompletion, ScheduledEvent
from tests.helpers.simulation import (
    MANAGER,
    OWNER,
    at,
    customer,
    entries,
    index,
    local,
    near,
    one,
    show,
)

BERLIN = "Europe/Berlin"
MONDAY = at(BERLIN, 2026, 11, 23, 10, 0)  # Monday 10:00, inside the send window


def in_window(moment, timezone=BERLIN) -> bool:
    there = local(moment, timezone)
    return there.weekday() < 5 and 9 <= there.hour < 17


def event(day: int, name: str, hour: int | None = None) -> ScheduledEvent:
    return ScheduledEvent(day=day, at=time(hour, 0) if hour is not None else None, name=name)


def steps(timeline) -> list[str]:
    return [e.step for e in timeline.timeline]


# -- milestone before / after the timeout ---------------------------------------------------
async def test_integration_connected_on_day_two_means_no_nudge(sim, project):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN),
        start=MONDAY,
        days=12,
        events=[event(2, "integration.connected", 11)],
    )
    assert "nudge_integration" not in steps(timeline), show(timeline)
    milestone = one(timeline, "milestone", "await_integration")
    assert milestone.name == "integration_connected"
    assert near(milestone.at, at(BERLIN, 2026, 11, 25, 11, 0))
    invite = one(timeline, "email", "invite_team")
    assert index(timeline, invite) > index(timeline, milestone)
    assert invite.at - milestone.at < timedelta(minutes=1)


async def test_no_integration_nudges_after_seven_days_inside_the_send_window(sim, project):
    # Kickoff held Tuesday 19:00, so the 7-day wait runs out at 19:00 the next Tuesday,
    # after hours: the nudge goes out on Wednesday 09:00, Berlin time.
    person = customer(BERLIN, segment="enterprise")
    timeline = await sim.run(
        project.plan("onboarding"),
        person,
        start=MONDAY,
        days=12,
        completions=[ScheduledCompletion(step="kickoff", day=1, at=time(19, 0), outcome="held")],
    )
    wait = one(timeline, "wait", "await_integration")
    assert near(wait.at, at(BERLIN, 2026, 11, 24, 19, 0)), show(timeline)
    assert near(wait.until, at(BERLIN, 2026, 12, 1, 19, 0))
    nudge = one(timeline, "email", "nudge_integration")
    assert timedelta(days=7) <= nudge.at - wait.at < timedelta(days=8)
    assert in_window(nudge.at), show(timeline)
    assert near(nudge.at, at(BERLIN, 2026, 12, 2, 9, 0))
    assert nudge.to == ["ada@globex.example", "carl@globex.example"]
    assert "invite_team" not in steps(timeline)[: index(timeline, nudge)]


async def test_integration_connected_after_the_nudge_goes_on_to_invite_team(sim, project):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN),
        start=MONDAY,
        days=20,
        events=[event(9, "integration.connected", 14)],
    )
    nudge = one(timeline, "email", "nudge_integration")
    milestone = one(timeline, "milestone", "await_integration_after_nudge")
    invite = one(timeline, "email", "invite_team")
    assert index(timeline, nudge) < index(timeline, milestone) < index(timeline, invite)
    assert near(milestone.at, at(BERLIN, 2026, 12, 2, 14, 0)), show(timeline)
    assert invite.at - milestone.at < timedelta(minutes=1)
    assert "integration_help" not in steps(timeline)


# -- goal and exit in the middle of a wait --------------------------------------------------
@pytest.mark.parametrize(
    ("name", "outcome", "kind"),
    [("report.created", "goal_reached", "goal"), ("customer.churned", "exited", "exit")],
)
async def test_goal_or_exit_event_mid_wait_ends_the_run_there(sim, project, name, outcome, kind):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN),
        start=MONDAY,
        events=[event(3, name, 15)],
    )
    assert timeline.outcome == outcome, show(timeline)
    last = timeline.timeline[-1]
    assert last.kind == kind, show(timeline)
    assert near(last.at, at(BERLIN, 2026, 11, 26, 15, 0))
    assert entries(timeline, "wait", "await_integration"), "the event arrived mid-wait"
    assert not entries(timeline, "email", "nudge_integration")
    assert [e.kind for e in timeline.timeline].count(kind) == 1
    assert all(e.at <= last.at for e in timeline.timeline)
    assert timeline.end == last.at
    assert {e.step for e in timeline.emails} == {"welcome"}


# -- the kickoff task: outcomes route, silence escalates -------------------------------------
async def test_kickoff_held_goes_on_to_the_integration_wait(sim, project, team):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        team=team,
        start=MONDAY,
        days=3,
        completions=[ScheduledCompletion(step="kickoff", day=1, outcome="held")],
    )
    task = one(timeline, "task", "kickoff")
    assert task.assignee == OWNER
    assert task.priority == "high"
    assert near(task.due, task.at + timedelta(days=3))
    done = one(timeline, "task_completed", "kickoff")
    assert done.outcome == "held"
    following = timeline.timeline[index(timeline, done) + 1]
    assert (following.kind, following.step) == ("wait", "await_integration"), show(timeline)
    assert "kickoff_follow_up" not in steps(timeline)
    assert not entries(timeline, "task_escalated")


async def test_kickoff_no_response_sends_the_follow_up_email(sim, project, team):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        team=team,
        start=MONDAY,
        days=3,
        completions=[ScheduledCompletion(step="kickoff", day=1, outcome="no_response")],
    )
    done = one(timeline, "task_completed", "kickoff")
    assert done.outcome == "no_response"
    follow_up = one(timeline, "email", "kickoff_follow_up")
    assert index(timeline, follow_up) == index(timeline, done) + 1, show(timeline)
    assert follow_up.to == ["ada@globex.example", "carl@globex.example"]
    wait = timeline.timeline[index(timeline, follow_up) + 1]
    assert (wait.kind, wait.step) == ("wait", "await_integration")


async def test_kickoff_never_completed_escalates_to_the_owners_manager(sim, project, team):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        team=team,
        start=MONDAY,
        days=10,
    )
    task = one(timeline, "task", "kickoff")
    assert task.assignee == OWNER
    escalated = one(timeline, "task_escalated", "kickoff")
    # 5 working days of the owner (Monday to Friday): the next Monday.
    assert near(escalated.at, task.at + timedelta(days=7)), show(timeline)
    assert escalated.assignee == MANAGER, "team.yaml: Aiko Tanaka's manager is Kenji Watanabe"
    assert escalated.priority == "urgent"
    assert escalated.title and "Kickoff call with Globex" in escalated.title
    assert not entries(timeline, "task_completed")
    assert timeline.outcome == "running"


async def test_kickoff_never_completed_times_out_and_the_enrollment_goes_on(sim, project, team):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        team=team,
        start=MONDAY,
        days=30,
    )
    task = one(timeline, "task", "kickoff")
    timed_out = one(timeline, "task_timed_out", "kickoff")
    assert near(timed_out.at, task.at + timedelta(days=21)), show(timeline)
    assert "outcome 'no_response' assumed" in (timed_out.detail or "")
    assert one(timeline, "email", "kickoff_follow_up").at >= timed_out.at
