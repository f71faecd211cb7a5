"""Changes emitted by imports and ``update`` steps, and changes that end waits, goals and
exits, on a real (time-skipping) Temporal server (docs/health.md, "Changes end waits")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from activities.registry import PlaybookActivities
from engine.client.changes import ChangeTarget, snapshot_before
from engine.client.deployment import deploy_new_playbooks
from engine.services.customers import react_to_import, react_to_save
from engine.services.customers_import import plan_import, read_rows, run_import
from engine.statuses import EnrollmentStatus
from engine.store import repository
from tests.helpers.harness import Harness, playbook_worker, seed_customer, write_project

RISK = """\
playbook: risk
name: Health fell
trigger: {on_change: "health.score < 40", cooldown: 7d}
reenroll: always
steps:
  - id: done
    end: {outcome: flagged}
"""
VIP = """\
playbook: vip
name: Became a VIP
trigger: {on_change: '"vip" in customer.tags'}
steps:
  - id: done
    end: {outcome: welcomed}
"""
TAGGER = """\
playbook: tagger
name: Tags the customer
trigger: {manual: true}
steps:
  - id: tag
    update: {add_tags: [vip], set: {tier: gold}}
"""
WATCH = """\
playbook: watch
name: Watch the account
trigger: {manual: true}
goal: {when: "health.score >= 70"}
exit: {if: 'customer.segment == "churned"'}
steps:
  - id: until_enterprise
    wait_for: {when: 'customer.segment == "enterprise"', timeout: 14d, on_timeout: timed_out}
  - id: hold
    wait: {for: 30d}
  - id: timed_out
    end: {outcome: timed_out}
"""


def _save(sessions: sessionmaker[Session], customer_id: str, **values: Any) -> None:
    with sessions.begin() as session:
        customer = repository.get_customer(session, customer_id)
        assert customer is not None
        for name, value in values.items():
            setattr(customer, name, value)


async def test_an_import_that_drops_health_fires_the_on_change_trigger_once(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"risk": RISK})
    seed_customer(sessions, customer_id, health=80)
    path = tmp_path / "customers.csv"
    path.write_text(f"id,name,health_score\n{customer_id},Acme,30\n", encoding="utf-8")
    rows = read_rows(path)
    async with playbook_worker(temporal_env, task_queue, PlaybookActivities(sessions)):
        h = Harness(temporal_env, sessions, task_queue, customer_id)
        started: list[list[str]] = []
        for _ in range(2):  # the same file twice: the second changes nothing
            now = await h.now()
            result = run_import(sessions, plan_import(rows), now=now)
            assert not result.errors, result.errors
            _, enrolled, _ = await react_to_import(
                ChangeTarget(temporal_env.client, sessions, task_queue, False),
                project.plans,
                None,
                result.befores,
                result.date_changes,
                now,
            )
            started.append(enrolled)
            h.started += enrolled
        await h.stop_leftovers()
    assert [[w.split("/")[0] for w in s] for s in started] == [["risk"], []], started


async def test_an_update_step_emits_its_change_and_fires_a_trigger(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"tagger": TAGGER, "vip": VIP})
    deploy_new_playbooks(sessions, project, by="test", commit=None)
    seed_customer(sessions, customer_id)
    activities = PlaybookActivities(
        sessions, client=temporal_env.client, task_queue=task_queue, use_search_attributes=False
    )
    async with playbook_worker(temporal_env, task_queue, activities):
        h = Harness(temporal_env, sessions, task_queue, customer_id)
        handle = await h.start(project.plans["tagger"])
        await h.result(handle)
        enrolled = await h.until(
            lambda: [e for e in _enrollments(sessions, customer_id) if e.startswith("vip/")],
            step=timedelta(minutes=1),
            limit=timedelta(hours=1),
        )
        h.started += enrolled
        await h.stop_leftovers()
    assert len(enrolled) == 1
    assert h.customer().attributes["tier"] == "gold"


def _enrollments(sessions: sessionmaker[Session], customer_id: str) -> list[str]:
    from sqlalchemy import select

    from engine.store.models import Enrollment

    with sessions() as session:
        query = select(Enrollment.workflow_id).where(Enrollment.customer_id == customer_id)
        return list(session.scalars(query))


async def test_changes_end_a_wait_a_goal_and_an_exit_but_not_while_false(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"watch": WATCH})
    plan = project.plans["watch"]
    stays, exits = f"{customer_id}-stays", f"{customer_id}-exits"
    for cid in (customer_id, stays, exits):
        seed_customer(sessions, cid, segment="smb", health=50)
    async with playbook_worker(temporal_env, task_queue, PlaybookActivities(sessions)):
        h = Harness(temporal_env, sessions, task_queue, customer_id)

        async def change(cid: str, **values: Any) -> None:
            now = await h.now()
            before = snapshot_before(sessions, cid, now)
            _save(sessions, cid, **values)
            target = ChangeTarget(temporal_env.client, sessions, task_queue, False)
            await react_to_save(target, {}, None, cid, before, now)

        handles = {cid: await h.start(plan, cid) for cid in (customer_id, stays, exits)}
        for handle in handles.values():
            await h.until_waiting(handle, "customer.segment", step=timedelta(minutes=1))
        # Changes that leave every condition false end nothing.
        for cid in handles:
            await change(cid, segment="mid-market", health_score=60)
        await h.env.sleep(timedelta(hours=1))
        for handle in handles.values():
            status = await h.status(handle)
            assert (status.current_step, status.outcome) == ("until_enterprise", None)
        # The wait ends when the customer becomes enterprise; the goal when health is 70+.
        await change(customer_id, segment="enterprise")
        await h.until_step(handles[customer_id], "hold", step=timedelta(minutes=1))
        await change(customer_id, health_score=75)
        # The exit condition ends a wait as soon as it holds. Sent before awaiting any
        # result: the time-skipping server skips ahead while a result is awaited, and
        # could run out this wait's timeout first.
        await change(exits, segment="churned")
        goal = await h.result(handles[customer_id])
        exited = await h.result(handles[exits])
        # The customer whose changes kept the conditions false waited out its timeout.
        stayed = await h.result(handles[stays])
        await h.stop_leftovers()
    assert (goal.status, goal.reason) == (
        EnrollmentStatus.GOAL_REACHED,
        "goal holds: health.score >= 70",
    )
    assert (exited.status, exited.ended_at_step) == (EnrollmentStatus.EXITED, "until_enterprise")
    assert (stayed.outcome, stayed.ended_at_step) == ("timed_out", "timed_out")
