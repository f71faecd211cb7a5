"""Acceptance: the simulator's gaps of issue 13 (defect 7): the trigger event of an on_event
playbook, wait_for timeouts, duration waits in the customer's zone, each contact's subject,
and what a run still going at the end waits for."""

from __future__ import annotations

import json
from datetime import time, timedelta

import pytest

from engine.errors import SimulationInputError
from engine.simulation import ScheduledCompletion, TriggerEvent, parse_trigger
from engine.simulation.view import describe
from tests.helpers.paths import EXAMPLES
from tests.helpers.simulation import at, customer, local, near, one, show
from tests.simulation.test_sim_cli import simulate as simulate_cli

BERLIN = "Europe/Berlin"
TOKYO = "Asia/Tokyo"
MONDAY = at(BERLIN, 2026, 11, 23, 10, 0)  # inside the send window


def rescue_plan(project):
    """Onboarding, started by a falling health score, its kickoff task naming the score."""
    plan = project.plan("onboarding")
    assert plan.trigger is not None
    trigger = plan.trigger.model_copy(
        update={"event": "health.changed", "condition": "event.properties.score < 50"}
    )
    steps = []
    for step in plan.steps:
        if step.id == "kickoff":
            assert step.task is not None
            task = step.task.model_copy(
                update={"title": "Rescue call: health fell to {{ event.properties.score }}"}
            )
            step = step.model_copy(update={"task": task})
        steps.append(step)
    return plan.model_copy(update={"trigger": trigger, "steps": steps})


# -- (a) the trigger event ----------------------------------------------------------------
def test_parse_trigger_reads_values_as_json():
    assert parse_trigger("health.changed score=30 source=crm") == TriggerEvent(
        name="health.changed", properties={"score": 30, "source": "crm"}
    )
    with pytest.raises(SimulationInputError, match="not key=value"):
        parse_trigger("health.changed score")


async def test_trigger_event_reaches_the_condition_and_the_templates(sim, project):
    timeline = await sim.run(
        rescue_plan(project),
        customer(BERLIN, segment="enterprise"),
        start=MONDAY,
        days=1,
        trigger=parse_trigger("health.changed score=30"),
    )
    assert timeline.outcome != "not_enrolled", show(timeline)
    task = one(timeline, "task", "kickoff")
    assert task.title == "Rescue call: health fell to 30", show(timeline)


async def test_trigger_condition_false_says_why_not_enrolled(sim, project):
    timeline = await sim.run(
        rescue_plan(project),
        customer(BERLIN, segment="enterprise"),
        start=MONDAY,
        days=1,
        trigger=parse_trigger("health.changed score=80"),
    )
    assert timeline.outcome == "not_enrolled"
    assert not timeline.timeline
    [warning] = timeline.warnings
    assert "would not be enrolled on health.changed score=80" in warning
    assert "event.properties.score < 50" in warning and "is false" in warning


async def test_without_the_trigger_event_the_condition_asks_for_it(sim, project):
    timeline = await sim.run(
        rescue_plan(project), customer(BERLIN, segment="enterprise"), start=MONDAY, days=1
    )
    assert timeline.outcome == "not_enrolled"
    assert "--trigger 'health.changed" in timeline.warnings[0], timeline.warnings


async def test_a_trigger_the_playbook_does_not_start_on_is_an_input_error(sim, project):
    with pytest.raises(SimulationInputError, match=r"starts on health\.changed"):
        await sim.run(
            rescue_plan(project),
            customer(BERLIN),
            start=MONDAY,
            days=1,
            trigger=parse_trigger("customer.created"),
        )


# -- (b) wait_for timeouts ----------------------------------------------------------------
async def test_wait_for_timeout_shows_when_and_where_it_went(sim, project):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        start=MONDAY,
        days=12,
        completions=[ScheduledCompletion(step="kickoff", day=1, at=time(19, 0), outcome="held")],
    )
    wait = one(timeline, "wait", "await_integration")
    timeout = one(timeline, "timeout", "await_integration")
    assert wait.until is not None and near(timeout.at, wait.until), show(timeline)
    assert timeout.goto == "nudge_integration"
    assert timeout.name == "integration_connected"
    assert timeout.detail == (
        "no milestone integration_connected before the timeout, going to nudge_integration"
    )
    steps = [(e.kind, e.step) for e in timeline.timeline]
    assert steps.index(("timeout", "await_integration")) + 1 == steps.index(
        ("wait", "nudge_integration")
    ), show(timeline)  # the nudge then waits for the send window


# -- (c) duration waits in the customer's zone --------------------------------------------
async def test_duration_wait_is_shown_in_the_customer_zone(sim, project):
    start = at(TOKYO, 2026, 11, 24, 10, 0)  # Tuesday 10:00 in Tokyo, 01:00 UTC
    timeline = await sim.run(
        project.plan("qbr"),
        customer(TOKYO, segment="enterprise"),
        start=start,
        days=3,
        completions=[
            ScheduledCompletion(step="prepare", day=0, at=time(11, 0), outcome="scheduled")
        ],
    )
    wait = one(timeline, "wait", "meeting_window")
    assert wait.until is not None and near(wait.until, at(TOKYO, 2026, 12, 8, 11, 0), 120)
    assert wait.until.utcoffset() == timedelta(hours=9)
    assert "+00:00" not in wait.detail and "+09:00" in wait.detail, wait.detail
    assert describe(wait) == f"until {local(wait.until, TOKYO):%a %Y-%m-%d %H:%M}"
    assert "Tue 2026-12-08 11:0" in describe(wait)


# -- (d) an email to several contacts -----------------------------------------------------
async def test_email_to_several_contacts_shows_each_subject(sim, project):
    timeline = await sim.run(project.plan("onboarding"), customer(BERLIN), start=MONDAY, days=1)
    email = one(timeline, "email", "welcome")
    assert email.subjects == {
        "ada@globex.example": "Welcome to Acme, Ada",
        "carl@globex.example": "Welcome to Acme, Carl",
    }, show(timeline)
    text = describe(email)
    assert '"Welcome to Acme, Ada"' in text and '"Welcome to Acme, Carl"' in text
    assert text.index("ada@globex.example") < text.index("Ada")


# -- (e) what a run still going waits for -------------------------------------------------
async def test_run_blocked_on_a_task_names_the_task_and_the_deadline(sim, project):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        start=MONDAY,
        days=2,
    )
    assert timeline.outcome == "running", show(timeline)
    waiting = timeline.waiting
    assert waiting is not None
    assert waiting.step == "kickoff"
    assert waiting.waiting_for == "task 'Kickoff call with Globex'"
    # It escalates after 5 working days of the owner (Monday to Friday): the next Monday.
    assert waiting.until is not None and near(waiting.until, MONDAY + timedelta(days=7))
    [warning] = timeline.warnings
    assert (
        "step 'kickoff' waits for task 'Kickoff call with Globex', until Mon 2026-11-30 10:0"
        in warning
    ), warning


async def test_run_blocked_after_escalation_waits_until_the_task_times_out(sim, project):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, segment="enterprise"),
        start=MONDAY,
        days=8,
    )
    assert timeline.waiting is not None, show(timeline)
    assert timeline.waiting.until is not None
    assert near(timeline.waiting.until, MONDAY + timedelta(days=21))
    assert "waits for task 'Kickoff call with Globex', until" in timeline.warnings[0]


async def test_run_blocked_on_a_milestone_names_it(sim, project):
    timeline = await sim.run(project.plan("onboarding"), customer(BERLIN), start=MONDAY, days=3)
    assert timeline.waiting is not None, show(timeline)
    assert timeline.waiting.step == "await_integration"
    assert timeline.waiting.waiting_for == "milestone integration_connected"
    assert "until" in timeline.warnings[0] and "CET" in timeline.warnings[0]


def test_cli_trigger_option():
    args = ["onboarding", "--customer", str(EXAMPLES / "hoshino-logistics.yaml"), "--days", "1"]
    result = simulate_cli(*args, "--trigger", "customer.created source=crm", "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["outcome"] != "not_enrolled"
    bad = simulate_cli(*args, "--trigger", "health.changed score=30")
    assert bad.exit_code == 2
    assert "starts on customer.created, not health.changed" in bad.output


async def test_an_owner_outside_the_team_is_a_warning(sim, project, team):
    timeline = await sim.run(
        project.plan("onboarding"),
        customer(BERLIN, owner="nobody@acme.example"),
        team=team,
        start=MONDAY,
        days=1,
    )
    assert "owner nobody@acme.example is not a team member (simulated as one)" in (
        timeline.warnings
    ), timeline.warnings
