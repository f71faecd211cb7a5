"""``on_change`` triggers on a real Temporal server: a health score crossing below 40 enrolls
the risk play once, staying low does not enroll again, recovering and falling again (after
the cooldown) does; a customer save and an ``update`` step recompute health, and a segment
change fires its trigger (docs/health.md)."""

from __future__ import annotations

from datetime import timedelta

from engine.client.changes import ChangeTarget, snapshot_before
from engine.client.routing import EventRouter
from engine.language.health import Scorecard
from engine.services.customers import react_to_save
from engine.statuses import EnrollmentStatus
from engine.store import repository
from tests.helpers.harness import running, seed_customer, write_project

RISK = """\
playbook: risk
name: Health fell to red
trigger: {on_change: "health.score < 40", cooldown: 7d}
reenroll: always
steps:
  - id: done
    end: {outcome: flagged}
"""
ENTERPRISE = """\
playbook: enterprise
name: Became enterprise
trigger: {on_change: 'customer.segment == "enterprise"'}
steps:
  - id: done
    end: {outcome: welcomed}
"""
WATCH = """\
playbook: watch
name: Watch the account
trigger: {manual: true}
goal: {when: 'health.band == "green"'}
steps:
  - id: hold
    wait: {for: 30d}
  - id: done
    end: {outcome: waited}
"""
SURVEY = """\
playbook: survey
name: Record the survey's answer
trigger: {manual: true}
steps:
  - id: record
    update: {set: {nps: 5}}
  - id: done
    end: {outcome: recorded}
"""
NPS = Scorecard.model_validate(
    {"measures": {"nps": {"field": "attributes.nps", "linear": {"from": 0, "to": 60}}}}
)
CARD = Scorecard.model_validate(
    {
        "measures": {
            "wau": {
                "event": "weekly_active_users",
                "measure": "latest",
                "window": "14d",
                "linear": {"from": 0, "to": 10},
            }
        }
    }
)


async def test_a_score_crossing_below_40_enrolls_once_per_fall(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"risk": RISK})
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
        enrolled: list[list[str]] = []
        for n, (value, days) in enumerate([(8, 0), (2, 1), (1, 2), (9, 10), (3, 11)]):
            now = await h.now() + timedelta(days=days)
            routed = await router.handle(
                f"wau-{n}", customer_id, "weekly_active_users", now, {"value": value}, now=now
            )
            enrolled.append(routed.enrolled or routed.notes)
            for workflow_id in routed.enrolled:  # the play ends before the next change
                await temporal_env.client.get_workflow_handle(workflow_id).result()
                await h.until(
                    lambda: h.stored_end(workflow_id)[0] != "running",  # noqa: B023
                    step=timedelta(minutes=1),
                    limit=timedelta(hours=1),
                )
    # 80 (green), 20: fell -> enrolled, 10: stayed low, 90: recovered, 30: fell again after
    # the 7-day cooldown -> enrolled again.
    assert [len([w for w in e if w.startswith("risk/")]) for e in enrolled] == [0, 1, 0, 0, 1], (
        enrolled
    )
    with sessions() as session:
        customer = repository.get_customer(session, customer_id)
        assert customer is not None and (customer.health_score, customer.health_band) == (30, "red")


async def test_a_measured_event_is_scored_with_no_on_change_playbook(
    temporal_env, sessions, task_queue, customer_id
):
    """With nothing to judge the change, the event is still scored (and nothing enrolls)."""
    seed_customer(sessions, customer_id, health=None)
    router = EventRouter(
        sessions, temporal_env.client, {}, {}, task_queue, use_search_attributes=False,
        scorecard=CARD,
    )  # fmt: skip
    routed = await router.handle("wau-low", customer_id, "weekly_active_users", None, {"value": 3})
    assert routed.status == "accepted" and routed.enrolled == []
    with sessions() as session:
        customer = repository.get_customer(session, customer_id)
        assert customer is not None and (customer.health_score, customer.health_band) == (30, "red")


async def test_a_measured_event_tells_a_running_enrollment_with_no_on_change_playbook(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    """With no ``on_change`` playbook the router skips the snapshots around a score only
    when the customer has no running enrollment: one that has is told the health moved, so
    its ``goal: when`` over health is judged again."""
    project = write_project(tmp_path / "project", {"watch": WATCH})
    seed_customer(sessions, customer_id, health=None)
    router = EventRouter(
        sessions, temporal_env.client, {}, {}, task_queue, use_search_attributes=False,
        scorecard=CARD,
    )  # fmt: skip
    async with running(temporal_env, sessions, task_queue, None, customer_id) as h:
        handle = await h.start(project.plans["watch"], customer_id)
        await h.until_step(handle, "hold", step=timedelta(minutes=1))
        now = await h.now()
        routed = await router.handle(
            "wau-high", customer_id, "weekly_active_users", now, {"value": 9}, now=now
        )
        result = await h.result(handle)
    assert routed.health is not None and routed.health.result.band == "green"
    assert (result.status, result.reason, result.ended_at_step) == (
        EnrollmentStatus.GOAL_REACHED,
        'goal holds: health.band == "green"',
        "hold",  # during the wait, not at its end 30 days later
    )


async def test_a_segment_change_fires_its_trigger_once(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"enterprise": ENTERPRISE})
    seed_customer(sessions, customer_id, segment="smb")
    async with running(temporal_env, sessions, task_queue, None, customer_id) as h:
        fired = []
        for segment in ("smb", "enterprise", "enterprise"):
            now = await h.now()
            before = snapshot_before(sessions, customer_id, now)
            with sessions.begin() as session:
                repository.upsert_customer(
                    session,
                    repository.CustomerData(
                        id=customer_id, name="Acme", segment=segment, attributes={"nps": 60}
                    ),
                )
            started, notes = await react_to_save(
                ChangeTarget(temporal_env.client, sessions, task_queue, False),
                project.plans,
                NPS,
                customer_id,
                before,
                now,
            )
            fired.append((len(started), notes))
    assert [n for n, _ in fired] == [0, 1, 0], fired
    assert "was already true" in fired[2][1][0]
    with sessions() as session:  # the save recomputed health from the measured field
        customer = repository.get_customer(session, customer_id)
        assert customer is not None and (customer.health_score, customer.health_band) == (
            100,
            "green",
        )


async def test_the_daily_recompute_workflow_scores_every_customer_and_fires_on_change(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    """`HealthRecomputeWorkflow` (what the daily Schedule starts) and its activity."""
    from concurrent.futures import ThreadPoolExecutor

    from activities.health import HealthActivities
    from engine.client.deployment import deploy_new_playbooks
    from engine.messages import HEALTH_WORKFLOW_NAME, HealthRecomputeInput, HealthRecomputeResult
    from workflows.health import HealthRecomputeWorkflow

    project = write_project(tmp_path / "project", {"risk": RISK})
    seed_customer(sessions, customer_id, health=None)
    deploy_new_playbooks(sessions, project, by="test", commit=None)
    with sessions.begin() as session:
        repository.upsert_customer(
            session, repository.CustomerData(id=customer_id, name="Acme", attributes={"nps": 10})
        )
    scorer = HealthActivities(sessions, temporal_env.client, task_queue, False)
    async with running(temporal_env, sessions, task_queue, None, customer_id):
        from temporalio.worker import Worker

        with ThreadPoolExecutor(2) as pool:
            async with Worker(
                temporal_env.client,
                task_queue=f"{task_queue}-health",
                workflows=[HealthRecomputeWorkflow],
                activities=[scorer.recompute_health],
                activity_executor=pool,
            ):
                result = await temporal_env.client.execute_workflow(
                    HEALTH_WORKFLOW_NAME,
                    HealthRecomputeInput(scorecard=NPS.model_dump(mode="json", by_alias=True)),
                    id=f"health-{customer_id}",
                    task_queue=f"{task_queue}-health",
                    result_type=HealthRecomputeResult,
                )
    assert (result.customers, result.changed) == (1, 1)
    assert [w.split("/")[0] for w in result.enrolled] == ["risk"]  # nps 10 -> 17: red


async def test_an_update_step_recomputes_health_and_fires_on_change(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    """The scorecard measures ``attributes.nps``; a step setting it to 5 moves the score
    from 100 to 8 at once (not at the next daily recompute), and the fall starts the risk
    play, as a save through the API would."""
    from activities.registry import PlaybookActivities
    from engine.client.deployment import deploy_new_playbooks
    from tests.helpers.harness import Harness, playbook_worker

    project = write_project(tmp_path / "project", {"survey": SURVEY, "risk": RISK})
    deploy_new_playbooks(sessions, project, by="test", commit=None)
    seed_customer(sessions, customer_id, health=100, attributes={"nps": 60})
    activities = PlaybookActivities(
        sessions,
        client=temporal_env.client,
        task_queue=task_queue,
        use_search_attributes=False,
        scorecard=NPS,
    )
    async with playbook_worker(temporal_env, task_queue, activities):
        h = Harness(temporal_env, sessions, task_queue, customer_id)
        try:
            handle = await h.start(project.plans["survey"], customer_id)
            assert (await h.result(handle)).outcome == "recorded"
            customer = h.customer()
            assert (customer.health_score, customer.health_band) == (8, "red")

            def risk_runs() -> list[str]:
                with sessions() as session:
                    runs = repository.list_enrollments(
                        session, playbook_id="risk", customer_id=customer_id, limit=5
                    )
                    return [run.status for run in runs]

            await h.until(risk_runs, step=timedelta(minutes=1), limit=timedelta(hours=1))
        finally:
            await h.stop_leftovers()
