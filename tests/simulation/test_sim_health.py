"""Health in `playbook simulate` (docs/health.md): the project's scorecard scores the events
given and the ``update`` steps' fields, each move is a ``health`` row of the timeline, and
the ``on_change`` risk play starts on the day weekly active users fall, not at the start."""

from __future__ import annotations

from datetime import datetime

from engine.simulation import ScheduledEvent, load_customer
from tests.helpers.harness import write_project
from tests.helpers.paths import EXAMPLES
from tests.helpers.simulation import show

USAGE = [(1, 11), (8, 9), (15, 8), (17, 4)]  # (day, weekly active users)


def _usage(days: list[tuple[int, int]]) -> list[ScheduledEvent]:
    return [
        ScheduledEvent(day=day, name="weekly_active_users", properties={"value": value})
        for day, value in days
    ]


async def test_the_timeline_shows_the_drop_and_the_risk_play_starting(sim, project, team):
    customer = load_customer(EXAMPLES / "brightpath-health.yaml")
    timeline = await sim.run(
        project.plan("risk"),
        customer,
        team=team,
        start=datetime(2027, 4, 5, 9, 0),
        days=20,
        events=_usage(USAGE),
        scorecard=project.scorecard,
    )
    rows = [(e.day, e.kind, e.step, e.detail) for e in timeline.timeline]
    assert rows[:4] == [
        (1, "health", "health", "health 64 -> 100 (green)"),
        (8, "health", "health", "health 100 -> 90 (green)"),
        (15, "health", "health", "health 90 -> 80 (green)"),
        (
            17,
            "health",
            "health",
            "Weekly active users fell 63.6% (11 -> 4) over 14d; health 80 -> 40 (yellow); "
            "risk started",
        ),
    ], rows
    started = timeline.timeline[4]
    assert (started.day, started.kind, started.step) == (17, "task", "investigate")
    emails = [e for e in timeline.timeline if e.kind == "email"]
    assert [e.step for e in emails] == ["check_in"]  # the usage drop emails the champion


async def test_without_the_change_the_risk_play_does_not_start(sim, project, team):
    customer = load_customer(EXAMPLES / "brightpath-health.yaml")
    timeline = await sim.run(
        project.plan("risk"),
        customer,
        team=team,
        start=datetime(2027, 4, 5, 9, 0),
        days=20,
        events=_usage([(1, 11), (8, 9)]),
        scorecard=project.scorecard,
    )
    assert timeline.outcome == "not_enrolled"
    assert [e.kind for e in timeline.timeline] == ["health", "health"]
    assert "did not become true" in timeline.warnings[-1]


async def test_a_recovery_in_the_simulation_ends_the_risk_plays_wait(sim, project, team):
    """Health moving during the run is told to the enrollment, as live: back to green on
    day 19, the play's 14-day wait ends and it finishes ``recovered``."""
    customer = load_customer(EXAMPLES / "brightpath-health.yaml")
    timeline = await sim.run(
        project.plan("risk"),
        customer,
        team=team,
        start=datetime(2027, 4, 5, 9, 0),
        days=25,
        events=_usage([*USAGE, (19, 11)]),
        scorecard=project.scorecard,
    )
    assert timeline.outcome == "recovered", [(e.day, e.kind, e.detail) for e in timeline.timeline]
    assert timeline.timeline[-1].day == 19


SURVEY = """\
playbook: survey
name: Record a detractor's survey answer
trigger: {manual: true}
steps:
  - id: wait_for_the_survey
    wait: {for: 2d}
  - id: record
    update: {set: {nps: -20}}
  - id: done
    end: {outcome: recorded}
"""


async def test_an_update_step_moves_health_on_its_day(sim, project, team, tmp_path):
    """The scorecard measures ``attributes.nps``: the step that sets it moves the score at
    once, as on a live worker, not at the next day's recompute."""
    survey = write_project(tmp_path / "project", {"survey": SURVEY}).plan("survey")
    timeline = await sim.run(
        survey,
        load_customer(EXAMPLES / "brightpath-health.yaml"),
        team=team,
        start=datetime(2027, 4, 5, 9, 0),
        days=5,
        scorecard=project.scorecard,
    )
    assert [(e.day, e.detail) for e in timeline.timeline if e.kind == "health"] == [
        (2, "health 64 -> 10 (red)")
    ], show(timeline)
    assert timeline.outcome == "recorded"
