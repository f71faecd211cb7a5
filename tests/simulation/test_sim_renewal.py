"""Acceptance: the renewal playbook runs on dates relative to the customer's renewal date."""

from __future__ import annotations

from datetime import date, time, timedelta

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

NEW_YORK = "America/New_York"
RENEWS = date(2027, 6, 30)  # a Wednesday; the 60-day mark (2027-05-01) is a Saturday
ADMIN_AND_SPONSOR = ["ada@globex.example", "sue@globex.example"]


def healthy(timezone: str = NEW_YORK, **fields):
    return customer(
        timezone, **{"segment": "enterprise", "renewal_date": RENEWS, "health_score": 88, **fields}
    )


async def test_start_defaults_to_120_days_before_renewal_at_nine_local(sim, project, team):
    timeline = await sim.run(project.plan("renewal"), healthy(), team=team, days=3)
    expected = at(NEW_YORK, 2027, 3, 2, 9, 0)  # 2027-06-30 - 120 days, EST (-05:00)
    assert timeline.start == expected
    assert timeline.start.utcoffset() == timedelta(hours=-5)
    assert near(timeline.timeline[0].at, expected), show(timeline)
    assert timeline.timeline[0].day == 0


async def test_the_90_60_30_day_emails_land_on_their_dates_in_the_customers_zone(
    sim, project, team
):
    timeline = await sim.run(project.plan("renewal"), healthy(), team=team, days=100)

    # Each wait ends at 10:00 local on renewal_date - N days (EDT by then, -04:00).
    for step, days_out in (("wait_90", 90), ("wait_60", 60), ("wait_30", 30)):
        wait = one(timeline, "wait", step)
        expected = at(NEW_YORK, *(RENEWS - timedelta(days=days_out)).timetuple()[:3], 10, 0)
        assert wait.until == expected, (step, show(timeline))
        assert wait.until.utcoffset() == timedelta(hours=-4)

    email_90 = one(timeline, "email", "email_90")
    assert near(email_90.at, at(NEW_YORK, 2027, 4, 1, 10, 0)), show(timeline)  # Thursday
    # 2027-05-01 is a Saturday: the send window holds the 60-day email to Monday 09:00.
    email_60 = one(timeline, "email", "email_60")
    assert near(email_60.at, at(NEW_YORK, 2027, 5, 3, 9, 0)), show(timeline)
    email_30 = one(timeline, "email", "email_30")
    assert near(email_30.at, at(NEW_YORK, 2027, 5, 31, 10, 0)), show(timeline)  # Monday
    for email in (email_90, email_60, email_30):
        assert email.to == ADMIN_AND_SPONSOR
        assert email.at.utcoffset() == timedelta(hours=-4)
    call = one(timeline, "task", "renewal_call")
    assert near(call.at, at(NEW_YORK, 2027, 5, 1, 10, 0))
    assert call.assignee == OWNER


async def test_low_health_takes_the_risk_path(sim, project, team):
    person = healthy(health_score=38)
    timeline = await sim.run(
        project.plan("renewal"),
        person,
        team=team,
        days=35,
        completions=[ScheduledCompletion(step="save_plan", day=1, outcome="save_plan_agreed")],
    )
    branch = one(timeline, "branch", "triage")
    assert branch.goto == "risk_alert", show(timeline)
    alert = one(timeline, "email", "risk_alert")
    assert alert.to == [MANAGER], "the owner's manager, from team.yaml"
    assert near(alert.at, timeline.start), "send_window: anytime"
    plan = one(timeline, "task", "save_plan")
    assert plan.priority == "urgent"
    assert plan.assignee == OWNER
    assert "Globex" in (plan.title or "")
    assert one(timeline, "task_completed", "save_plan").outcome == "save_plan_agreed"
    assert not entries(timeline, "task", "watch_review")
    email_90 = one(timeline, "email", "email_90")
    assert index(timeline, email_90) > index(timeline, plan)


async def test_high_health_takes_the_healthy_path(sim, project, team):
    timeline = await sim.run(project.plan("renewal"), healthy(), team=team, days=35)
    branch = one(timeline, "branch", "triage")
    assert branch.goto == "wait_90", show(timeline)
    assert not entries(timeline, "task"), "no risk or watch task for a healthy account"
    assert {e.step for e in entries(timeline, "email")} == {"email_90"}
    assert MANAGER not in {e.to for e in timeline.emails}


async def test_contract_renewed_midway_reaches_the_goal(sim, project, team):
    timeline = await sim.run(
        project.plan("renewal"),
        healthy(),
        team=team,
        events=[ScheduledEvent(day=45, at=time(11, 0), name="contract.renewed")],
    )
    assert timeline.outcome == "goal_reached", show(timeline)
    goal = timeline.timeline[-1]
    assert goal.kind == "goal"
    assert near(goal.at, at(NEW_YORK, 2027, 4, 16, 11, 0))  # 2027-03-02 + 45 days
    assert entries(timeline, "email", "email_90")
    assert not entries(timeline, "email", "email_60")
    assert not entries(timeline, "task", "renewal_call")
    assert local(goal.at, NEW_YORK).utcoffset() == timedelta(hours=-4)
