"""Registering a project with the running system: versions in the store, Schedules in
Temporal for date- and schedule-triggered playbooks and the daily health recompute. Safe to
run at every start."""

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
    HealthRecomputeInput,
    SweepInput,
)
from engine.project import Project
from engine.store import repository

SWEEP_EVERY = timedelta(hours=1)


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
        try:
            handle = await client.create_schedule(schedule_id, schedule)
        except ScheduleAlreadyRunningError:
            handle = client.get_schedule_handle(schedule_id)

            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)

            await handle.update(replace)
        if trigger_now:
            await handle.trigger(overlap=ScheduleOverlapPolicy.SKIP)
        ids.append(schedule_id)
    return ids


HEALTH_SCHEDULE_ID = "health-daily"


async def ensure_health_schedule(
    client: Client, scorecard: Scorecard | None, task_queue: str, trigger_now: bool = False
) -> str | None:
    """The daily health recompute Schedule, carrying the scorecard; created or updated in
    place, deleted when the project has no (valid) scorecard. Its id, or None."""
    handle = client.get_schedule_handle(HEALTH_SCHEDULE_ID)
    if scorecard is None:
        with contextlib.suppress(RPCError):  # there was none
            await handle.delete()
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
    try:
        handle = await client.create_schedule(HEALTH_SCHEDULE_ID, schedule)
    except ScheduleAlreadyRunningError:

        def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=schedule)

        await handle.update(replace)
    if trigger_now:
        await handle.trigger(overlap=ScheduleOverlapPolicy.SKIP)
    return HEALTH_SCHEDULE_ID
