"""Record the workflow histories that `tests/workflows/test_replay.py` replays.

Runs each scenario below (a shipped playbook walked along one of its main paths) on
Temporal's time-skipping test server, with the real activities against a throwaway SQLite
store, and writes the finished enrollment's history to ``tests/histories/<scenario>.json``
(``WorkflowHistory.to_json()``). See README.md in this folder for when to run it.

    .venv/bin/python -m tests.histories.record              # every scenario
    .venv/bin/python -m tests.histories.record renewal_at_risk qbr_held
    .venv/bin/python -m tests.histories.record --list
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from engine.client.sweeps import sweep
from engine.messages import EnrollmentResult, MigrateRequest, SkipRequest
from engine.project import Project, load_project
from engine.services.customers import notify_changed, save_customer
from engine.store import repository
from engine.store.db import migrate, session_factory
from tests.helpers.harness import Harness, local, running, seed_customer
from tests.helpers.paths import PLAYBOOKS, REPO
from tests.helpers.temporal import start_time_skipping
from workflows.playbook import PlaybookWorkflow

HERE = Path(__file__).resolve().parent
Handle = WorkflowHandle[Any, Any]
Scenario = Callable[[Harness, Project], Awaitable[Handle]]
SCENARIOS: dict[str, tuple[dict[str, Any], Scenario]] = {}
HOURS = timedelta(hours=2)
RENEWAL_ZONE = "America/Los_Angeles"


def scenario(name: str, **customer: Any) -> Callable[[Scenario], Scenario]:
    """Register a scenario; ``customer`` is passed to `seed_customer`."""

    def register(run: Scenario) -> Scenario:
        SCENARIOS[name] = (customer, run)
        return run

    return register


# -- onboarding ------------------------------------------------------------------------------
@scenario("onboarding_completed")
async def onboarding_completed(h: Harness, project: Project) -> Handle:
    """Happy path: kickoff held, data connected during the wait, team invited, check-in."""
    handle = await h.start(project.plan("onboarding"))
    [kickoff] = await h.until(lambda: h.tasks("kickoff"))
    await h.complete(handle, kickoff.id, "held")
    await h.until_waiting(handle, "milestone integration_connected")
    await h.env.sleep(timedelta(days=2))
    await h.event(handle, "integration.connected")
    await h.until_waiting(handle, "milestone team_invited", step=HOURS)
    for invitee in ("x", "y", "z"):
        await h.event(handle, "user.invited", {"email": f"{invitee}@acme.example"})
    return handle


@scenario("onboarding_nudged", segment="smb")
@scenario("onboarding_nudged_gen1", segment="smb")
async def onboarding_nudged(h: Harness, project: Project) -> Handle:
    """SMB: no kickoff, paused and resumed, never connected (nudge, help task), skip ahead.

    An operator pauses it during the first wait and resumes it after the timeout; the nudge
    and the CSM's help task follow; the operator then skips the team wait to the check-in.
    """
    handle = await h.start(project.plan("onboarding"))
    await h.until_waiting(handle, "milestone integration_connected", step=HOURS)
    await handle.execute_update(PlaybookWorkflow.pause)
    await h.env.sleep(timedelta(days=8))
    await handle.execute_update(PlaybookWorkflow.resume)
    await h.until_waiting(
        handle, "milestone team_invited", step=timedelta(hours=6), limit=timedelta(days=40)
    )
    await handle.execute_update(PlaybookWorkflow.skip_to_step, SkipRequest(step="check_in"))
    return handle


@scenario("onboarding_migrated", segment="smb")
async def onboarding_migrated(h: Harness, project: Project) -> Handle:
    """SMB: migrated during the first wait to a version whose integration wait is 3 days
    (the old 7-day deadline is kept), times out there, nudged, then skipped to the end."""
    plan = project.plan("onboarding")
    handle = await h.start(plan)
    await h.until_waiting(handle, "milestone integration_connected", step=HOURS)
    step = plan.step("await_integration")
    assert step.wait_for is not None
    shorter = step.model_copy(
        update={"wait_for": step.wait_for.model_copy(update={"timeout_seconds": 3 * 86_400})}
    )
    new = plan.model_copy(
        update={"steps": [shorter if s.id == step.id else s for s in plan.steps]}
    ).with_version()
    await handle.execute_update(PlaybookWorkflow.migrate, MigrateRequest(plan=new))
    await h.until_waiting(
        handle, "milestone integration_connected", step=HOURS, limit=timedelta(days=1)
    )
    await h.until_emailed(handle, "nudge_integration", step=timedelta(hours=6))
    await handle.execute_update(PlaybookWorkflow.skip_to_step, SkipRequest(step="end"))
    return handle


@scenario("onboarding_churned")
async def onboarding_churned(h: Harness, project: Project) -> Handle:
    """Kickoff left open until it escalates, then the customer churns."""
    handle = await h.start(project.plan("onboarding"))
    await h.until(lambda: [t for t in h.tasks() if t.escalation_of], step=timedelta(hours=12))
    await h.event(handle, "customer.churned")
    return handle


# -- adoption --------------------------------------------------------------------------------
@scenario("adoption_adopted")
async def adoption_adopted(h: Harness, project: Project) -> Handle:
    """Dashboards shared, alerts late (one nudge), six weekly active users: celebrated."""
    handle = await h.start(project.plan("adoption"))
    await h.until_waiting(handle, "milestone dashboards_shared")
    await h.event(handle, "dashboard.shared")
    await h.until_waiting(handle, "milestone alerts_configured")
    await h.env.sleep(timedelta(days=20))  # alerts come late: one nudge
    await h.event(handle, "alert.created")
    await h.until_waiting(handle, "milestone weekly_active_5", step=HOURS)
    await h.event(handle, "weekly_active_users", {"value": 6})
    return handle


@scenario("adoption_stalled")
async def adoption_stalled(h: Harness, project: Project) -> Handle:
    """Nothing is ever reached: three nudges, the stalled task, the end."""
    return await h.start(project.plan("adoption"))


# -- qbr -------------------------------------------------------------------------------------
@scenario("qbr_held", renewal=date(2027, 6, 30))
async def qbr_held(h: Harness, project: Project) -> Handle:
    """Scheduled: sponsor invitation, two weeks, recap and follow-up task."""
    handle = await h.start(project.plan("qbr"), cycle_key="2026-Q4")
    [prepare] = await h.until(lambda: h.tasks("prepare"))
    await h.complete(handle, prepare.id, "scheduled")
    return handle


@scenario("qbr_declined")
async def qbr_declined(h: Harness, project: Project) -> Handle:
    """Declined: the manager gets a review task."""
    handle = await h.start(project.plan("qbr"), cycle_key="2026-Q4")
    [prepare] = await h.until(lambda: h.tasks("prepare"))
    await h.complete(handle, prepare.id, "declined")
    return handle


# -- renewal ---------------------------------------------------------------------------------
@scenario("renewal_not_renewed", health=90, timezone=RENEWAL_ZONE)
async def renewal_not_renewed(h: Harness, project: Project) -> Handle:
    """Healthy account: the 90/60/30-day emails, the call, the overdue escalation."""
    return await h.start(project.plan("renewal"))


@scenario("renewal_at_risk", health=30, timezone=RENEWAL_ZONE)
async def renewal_at_risk(h: Harness, project: Project) -> Handle:
    """At risk: manager alert, save plan escalated, executive task; renewed before 60 days."""
    handle = await h.start(project.plan("renewal"))
    [save_plan] = await h.until(lambda: h.tasks("save_plan"))
    await h.until(lambda: [t for t in h.tasks() if t.escalation_of], step=timedelta(hours=12))
    await h.complete(handle, save_plan.id, "escalated")
    await h.until_step(handle, "wait_60", step=timedelta(days=1))
    await h.event(handle, "contract.renewed")
    return handle


@scenario("renewal_late_moved", health=90, timezone=RENEWAL_ZONE)
@scenario("renewal_late_moved_gen1", health=90, timezone=RENEWAL_ZONE)
async def renewal_late_moved(h: Harness, project: Project) -> Handle:
    """Imported 70 days out: enrolled late by the sweep, past the 90-day touch; the CRM moves
    the renewal 10 days (the wait follows), then a year ahead: `anchor_moved`."""
    today = local(await h.now(), RENEWAL_ZONE).date()
    renews = today + timedelta(days=70)
    await _move_renewal(h, renews)
    [enrolled] = await sweep(
        h.sessions,
        h.env.client,
        project.plan("renewal"),
        h.task_queue,
        await h.now(),
        use_search_attributes=False,
    )
    h.started.append(enrolled)
    handle = h.env.client.get_workflow_handle(enrolled, result_type=EnrollmentResult)
    await h.until_step(handle, "wait_60", step=HOURS, limit=timedelta(days=2))
    await _move_renewal(h, renews + timedelta(days=10))
    await h.until_status(
        handle,
        lambda s: (
            s.waiting_until is not None
            and local(s.waiting_until, RENEWAL_ZONE).date() == renews - timedelta(days=50)
        ),
        step=timedelta(minutes=1),
        limit=timedelta(hours=1),
    )
    await h.env.sleep(timedelta(days=3))
    await _move_renewal(h, renews + timedelta(days=375))
    return handle


async def _move_renewal(h: Harness, renews: date) -> None:
    """The CRM moves the customer's renewal date; its running enrollments are told."""
    data = repository.CustomerData(id=h.customer_id, name="Acme Corp", renewal_date=renews)
    changed = save_customer(h.sessions, data)
    await notify_changed(h.env.client, h.sessions, h.customer_id, changed)


# -- risk ------------------------------------------------------------------------------------
@scenario("risk_escalated")
async def risk_escalated(h: Harness, project: Project) -> Handle:
    """Red with weekly active users down: owner task, champion check-in, still red after 14
    days: manager escalation."""
    from datetime import UTC, datetime

    from engine.language.health import HealthResult, MeasureResult
    from engine.store import health
    from engine.store.models import Customer

    result = HealthResult(
        25, "red", 1.0, [MeasureResult("weekly_active_users", "WAU", 2.0, 20.0, 35, 25.0)]
    )
    with h.sessions.begin() as session:
        customer = session.get(Customer, h.customer_id)
        health.record(session, customer, result, datetime.now(UTC))
    handle = await h.start(project.plan("risk"))
    return handle


# -- recording -------------------------------------------------------------------------------
async def record_one(env: WorkflowEnvironment, project: Project, name: str) -> Path:
    customer, run = SCENARIOS[name]
    customer = dict(customer)
    if "health" in customer and "renewal" not in customer:  # renewal scenarios
        today = local(await env.get_current_time(), customer["timezone"]).date()
        customer["renewal"] = today + timedelta(days=120)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/store.db"
        migrate(url)
        sessions = session_factory(url)
        seed_customer(sessions, name, **customer)
        async with running(env, sessions, f"record-{name}", customer_id=name) as h:
            handle = await run(h, project)
            result = await h.result(handle, timeout=60)
            history = await handle.fetch_history()
    path = HERE / f"{name}.json"
    path.write_text(history.to_json() + "\n")
    print(f"{path.relative_to(REPO)}: {result.outcome}, {len(history.events)} events")
    return path


async def main(names: list[str]) -> None:
    project = load_project(PLAYBOOKS)
    for name in names:
        # A fresh server per scenario: the test server's clock can leap years ahead once a
        # run is over (stale execution-timeout timers), and recorded dates read better
        # near today.
        env = await start_time_skipping()
        try:
            await record_one(env, project, name)
        finally:
            await env.shutdown()


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", help="scenario names (default: all)")
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    args = parser.parse_args()
    if args.list:
        for name, (_, run) in SCENARIOS.items():
            print(f"{name}: {(run.__doc__ or '').splitlines()[0]}")
        return
    unknown = [n for n in args.scenarios if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; see --list")
    asyncio.run(main(args.scenarios or list(SCENARIOS)))
    # Every file is written and closed. Leave without interpreter finalization: the
    # Temporal SDK's native threads sometimes abort it ("PyGILState_Release ... must be
    # current"), which would turn a successful recording into exit status 134.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    cli()
