"""A risk signal as a trigger on a real Temporal server: ``on_change:
health.signals.usage_drop`` enrolls when weekly active users fall 30% against the previous
two weeks, not again while they stay low, and the play's task reads the signal's detail
(docs/health.md)."""

from __future__ import annotations

from datetime import timedelta

from engine.client.routing import EventRouter
from engine.language.health import Scorecard
from engine.store import repository
from tests.helpers.harness import running, seed_customer, write_project

DROP = """\
playbook: drop
name: Usage dropped
trigger: {on_change: health.signals.usage_drop, cooldown: 30d}
steps:
  - id: look
    task:
      title: "{{ health.details.usage_drop.text }}"
      assignee: owner
      due: 7d
  - id: done
    end: {outcome: flagged}
"""
CARD = Scorecard.model_validate(
    {
        "measures": {
            "wau": {
                "event": "weekly_active_users",
                "measure": "latest",
                "window": "14d",
                "linear": {"from": 0, "to": 10},
            }
        },
        "signals": {
            "usage_drop": {
                "kind": "usage_drop",
                "label": "Weekly active users",
                "event": "weekly_active_users",
                "of": "latest",
                "by": "30%",
                "window": "14d",
            }
        },
    }
)


async def test_a_usage_drop_signal_enrolls_when_it_turns_on(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"drop": DROP})
    seed_customer(sessions, customer_id, health=None)
    router = EventRouter(
        sessions,
        temporal_env.client,
        project.plans,
        project.milestones,
        task_queue,
        use_search_attributes=False,
        scorecard=CARD,
    )
    async with running(temporal_env, sessions, task_queue, None, customer_id) as h:
        start = await h.now()
        enrolled = []
        # day 0: 10 users (unknown: no previous window); day 8: 9 (still unknown);
        # day 15: 6, against 10 two weeks before: -40% -> on; day 16: 5, still on.
        for n, (value, day) in enumerate([(10, 0), (9, 8), (6, 15), (5, 16)]):
            now = start + timedelta(days=day)
            routed = await router.handle(
                f"wau-{n}", customer_id, "weekly_active_users", now, {"value": value}, now=now
            )
            assert routed.health is not None
            enrolled.append((routed.enrolled, {s.name: s.on for s in routed.health.result.signals}))
            if routed.enrolled:  # the task is written before the next event moves health
                await h.until(lambda: len(h.tasks("look")) == 1)
    assert [(len(e), signals["usage_drop"]) for e, signals in enrolled] == [
        (0, None),
        (0, None),
        (1, True),
        (0, True),
    ], enrolled
    assert h.tasks("look")[0].title == "Weekly active users fell 40% (10 -> 6) over 14d"
    with sessions() as session:
        customer = repository.get_customer(session, customer_id)
        assert customer is not None and customer.health_score == 50
