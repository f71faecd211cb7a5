"""Registering a project with the running system: versions in the store, Schedules in
Temporal for date- and schedule-triggered playbooks, the team's task notifications and the
daily health recompute. Safe to run at every start."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError

from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan
from engine.messages import (
    HEALTH_WORKFLOW_NAME,
    SWEEP_WORKFLOW_NAME,
    TEAM_NOTIFY_WORKFLOW_NAME,
    HealthRecomputeInput,
    SweepInput,
    TeamNotifyInput,
)
from engine.project import Project
from engine.store import repository

SWEEP_EVERY = timedelta(hours=1)
# Task notifications go out within this long of a task's event; each run is idempotent.
TEAM_NOTIFY_EVERY = timedelta(minutes=15)
TEAM_NOTIFY_SCHEDULE = "team-notify"


def register_versions(sessions: sessionmaker[Session], project: Project) -> list[str]:
    """Store every compiled plan's version (idempotent); return the new ones."""
    new = []
    with sessions.begin() as session:
        for pid, plan in project.plans.items():
            _, created = repository.register_playbook_version(
                session,
                playbook_id=pid,
                version=plan.version,
                name=plan.name,
                source=project.sources.get(pid, ""),
                plan=plan.model_dump(mode="json"),
            )
            if created:
                new.append(f"{pid}@{plan.short_version}")
    return new


def sweep_schedule_id(playbook: str) -> str:
    return f"sweep-{playbook}"


async def ensure_schedules(
    client: Client,
    plans: Mapping[str, CompiledPlan],
    task_queue: str,
    trigger_now: bool = True,
) -> list[str]:
    """An hourly sweep Schedule per date/schedule playbook of ``plans`` (the deployed
    ones); created or updated in place. Each sweep reads its playbook's deployed plan."""
    ids = []
    for pid, plan in sorted(plans.items()):
        if plan.trigger is None or plan.trigger.kind not in ("date", "schedule"):
            continue
        schedule = Schedule(
            action=ScheduleActionStartWorkflow(
                SWEEP_WORKFLOW_NAME,
                SweepInput(playbook=pid),
                id=f"sweep-{pid}",
                task_queue=task_queue,
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=SWEEP_EVERY)]),
            policy=SchedulePolicy(
                overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)
            ),
        )
        schedule_id = sweep_schedule_id(pid)
        await _create_or_update(client, schedule_id, schedule, trigger_now)
        ids.append(schedule_id)
    return ids


async def ensure_team_notify_schedule(
    client: Client, task_queue: str, trigger_now: bool = False
) -> str:
    """The Schedule that runs `TeamNotifyWorkflow` every `TEAM_NOTIFY_EVERY`: each task
    event to Slack and the webhook once, and each member's daily digest (created or
    updated in place; registered by the worker and `playbook up`)."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            TEAM_NOTIFY_WORKFLOW_NAME,
            TeamNotifyInput(),
            id=TEAM_NOTIFY_SCHEDULE,
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=TEAM_NOTIFY_EVERY)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=TEAM_NOTIFY_EVERY),
    )
    await _create_or_update(client, TEAM_NOTIFY_SCHEDULE, schedule, trigger_now)
    return TEAM_NOTIFY_SCHEDULE


HEALTH_SCHEDULE_ID = "health-daily"


async def ensure_health_schedule(
    client: Client, scorecard: Scorecard | None, task_queue: str, trigger_now: bool = False
) -> str | None:
    """The daily health recompute Schedule, carrying the scorecard; created or updated in
    place, deleted when the project has no (valid) scorecard. Its id, or None."""
    if scorecard is None:
        with contextlib.suppress(RPCError):  # there was none
            await client.get_schedule_handle(HEALTH_SCHEDULE_ID).delete()
        return None
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            HEALTH_WORKFLOW_NAME,
            HealthRecomputeInput(scorecard=scorecard.model_dump(mode="json", by_alias=True)),
            id=HEALTH_SCHEDULE_ID,
            task_queue=task_queue,
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(days=1))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
    )
    await _create_or_update(client, HEALTH_SCHEDULE_ID, schedule, trigger_now)
    return HEALTH_SCHEDULE_ID


async def _create_or_update(
    client: Client, schedule_id: str, schedule: Schedule, trigger_now: bool
) -> None:
    try:
        handle = await client.create_schedule(schedule_id, schedule)
    except ScheduleAlreadyRunningError:
        handle = client.get_schedule_handle(schedule_id)

        def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=new)

        await handle.update(replace)
    if trigger_now:
        await handle.trigger(overlap=ScheduleOverlapPolicy.SKIP)
