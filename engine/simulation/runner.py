"""The `Simulator`: the real interpreter on Temporal's time-skipping server, one customer's
enrollment driven through its scheduled events and task completions.

Real workflow, real activities, real template rendering and real decisions: only the
side effects are captured. Each run gets a throwaway SQLite store seeded with the customer
(and the team), emails go to the capture mailer, and the enrollment's clock is shifted so
it starts at ``start`` (any date, past or future). Nothing leaves the process.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mailer import CaptureMailer
from activities.registry import PlaybookActivities
from engine.client.connection import find_binary, quiet_runtime
from engine.client.playbook import EnrollmentHandle, start_enrollment
from engine.errors import SimulationInputError
from engine.language.plan import CompiledPlan
from engine.language.sendwindow import zone
from engine.messages import (
    DecideInput,
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentSnapshot,
    EventSignal,
    StepRecord,
    TaskCompletion,
)
from engine.simulation.inputs import (
    ScheduledCompletion,
    ScheduledEvent,
    SimCustomer,
    SimTeamMember,
    TriggerEvent,
    describe_action,
    schedule,
)
from engine.simulation.timeline import Timeline, build_timeline
from engine.statuses import TaskStatus
from engine.store import repository
from engine.store.events import ingest_event
from engine.store.models import Base, Task, TeamMember
from workflows.playbook import PlaybookWorkflow

MAX_DAYS = 400


@dataclass
class _Run:
    sessions: sessionmaker[Session]
    enrollment: EnrollmentHandle
    plan: CompiledPlan
    customer: SimCustomer
    start: datetime
    offset: timedelta
    warnings: list[str] = field(default_factory=list)


class Simulator:
    """Holds one time-skipping server and worker; runs simulations one after another."""

    def __init__(self, env: WorkflowEnvironment | None = None) -> None:
        self._env = env
        self._own_env = env is None
        self._tmp = tempfile.TemporaryDirectory(prefix="playbook-sim-")
        self._pool = ThreadPoolExecutor(max_workers=4)
        self._activities = PlaybookActivities(
            self._fresh_store(), CaptureMailer(), public_base_url="https://sim.invalid"
        )
        self._worker: Worker | None = None
        self._queue = f"simulation-{uuid.uuid4().hex[:8]}"
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> Simulator:
        if self._env is None:
            self._env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=str(find_binary("temporal-test-server")),
                data_converter=pydantic_data_converter,
                runtime=quiet_runtime(),
            )
        self._worker = Worker(
            self._env.client,
            task_queue=self._queue,
            workflows=[PlaybookWorkflow],
            activities=self._activities.all(),
            activity_executor=self._pool,
        )
        await self._worker.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._worker is not None:
            await self._worker.__aexit__(exc_type, exc, tb)
        if self._own_env and self._env is not None:
            await self._env.shutdown()
        self._pool.shutdown(wait=False)
        self._tmp.cleanup()

    @property
    def env(self) -> WorkflowEnvironment:
        assert self._env is not None, "use 'async with Simulator()'"
        return self._env

    def _fresh_store(self) -> sessionmaker[Session]:
        path = Path(self._tmp.name) / f"{uuid.uuid4().hex}.db"
        engine = create_engine(f"sqlite:///{path}", connect_args={"check_same_thread": False})
        Base.metadata.create_all(engine)
        return sessionmaker(engine, expire_on_commit=False)

    async def run(
        self,
        plan: CompiledPlan,
        customer: SimCustomer,
        *,
        team: list[SimTeamMember] | None = None,
        start: datetime | None = None,
        days: int | None = None,
        events: list[ScheduledEvent] | None = None,
        completions: list[ScheduledCompletion] | None = None,
        trigger: TriggerEvent | None = None,
    ) -> Timeline:
        """Simulate ``customer`` in ``plan``; return the timeline. Runs are sequential.

        ``trigger`` is the event that enrolls the customer in an ``on_event`` playbook: the
        trigger's ``if`` is tried against it first, and the enrollment gets it as its
        trigger event (``event.properties`` in templates and conditions).
        """
        async with self._lock:
            return await self._run(
                plan, customer, team or [], start, days, events or [], completions or [], trigger
            )

    async def _run(
        self,
        plan: CompiledPlan,
        customer: SimCustomer,
        team: list[SimTeamMember],
        start: datetime | None,
        days: int | None,
        events: list[ScheduledEvent],
        completions: list[ScheduledCompletion],
        trigger: TriggerEvent | None,
    ) -> Timeline:
        if days is not None and not 0 < days <= MAX_DAYS:
            raise SimulationInputError(f"--days must be between 1 and {MAX_DAYS}")
        sessions = self._fresh_store()
        self._activities.sessions = sessions
        _seed(sessions, customer, team)
        tz = zone(customer.timezone)
        real_now = datetime.now(UTC)
        start = await self._default_start(plan, customer, start, real_now)
        start = start if start.tzinfo else start.replace(tzinfo=tz)
        horizon = start + timedelta(days=days or MAX_DAYS)
        signal = _trigger_signal(plan, trigger, start)
        if signal is not None:  # stored first, as the live event route does before enrolling
            with sessions.begin() as session:
                ingest_event(
                    session,
                    event_id=signal.id,
                    customer_id=customer.id,
                    name=signal.name,
                    at=start,
                    properties=signal.properties,
                    milestones=plan.milestones,
                )
        why_not = self._why_not_enrolled(plan, customer, trigger, signal, start)
        if why_not is not None:
            return Timeline(
                playbook=plan.playbook,
                version=plan.version,
                customer=customer.id,
                timezone=customer.timezone,
                start=start,
                end=start,
                outcome="not_enrolled",
                warnings=[why_not],
            )
        server_now = await self.env.get_current_time()
        offset = start - server_now
        enrollment = f"{plan.playbook}/{customer.id}"
        handle = await start_enrollment(
            self.env.client,
            EnrollmentInput(
                plan=plan,
                customer_id=customer.id,
                enrollment_id=enrollment,
                trigger_event=signal,
                started_at=start,
                use_search_attributes=False,
                clock_offset_seconds=offset.total_seconds(),
            ),
            id=f"sim-{uuid.uuid4().hex}",
            task_queue=self._queue,
        )
        run = _Run(sessions, handle, plan, customer, start, offset)
        run.warnings += _strangers(plan, customer, team)
        await self._settle(run)  # the first workflow task runs before any time is skipped
        for moment, action in schedule(start, tz, events, completions):
            if moment > horizon:
                run.warnings.append(f"{describe_action(action)} is after the end of the simulation")
                continue
            if await self._advance(run, moment):
                run.warnings.append(f"{describe_action(action)}: the enrollment had already ended")
                break
            await self._deliver(run, action, moment)
        result, records, waiting = await self._finish(run, horizon)
        return build_timeline(
            run.sessions,
            run.plan,
            run.customer,
            run.start,
            result=result,
            records=records,
            horizon=horizon,
            warnings=run.warnings,
            waiting=waiting,
        )

    def _why_not_enrolled(
        self,
        plan: CompiledPlan,
        customer: SimCustomer,
        trigger: TriggerEvent | None,
        signal: EventSignal | None,
        start: datetime,
    ) -> str | None:
        """Why the trigger would not enroll ``customer`` at ``start``, or None if it would."""
        if plan.trigger is None or not plan.trigger.condition:
            return None
        condition = plan.trigger.condition
        holds = self._activities.decisions.decide(
            DecideInput(
                customer_id=customer.id,
                playbook=plan.playbook,
                expressions=[condition],
                event=signal,
                now=start,
            )
        )
        if not holds.values or holds.values[0] is True:
            return None
        on = f" on {_describe_trigger(trigger)}" if trigger else ""
        error = holds.errors[0] if holds.errors else None
        if error:
            hint = ""
            if trigger is None and plan.trigger.kind == "event":
                hint = f"; pass the trigger event, e.g. --trigger '{plan.trigger.event} key=value'"
            return (
                f"{customer.id} would not be enrolled{on}: the trigger condition "
                f"{condition} cannot be evaluated: {error}{hint}"
            )
        return (
            f"{customer.id} would not be enrolled{on}: the trigger condition is false: {condition}"
        )

    async def _default_start(
        self, plan: CompiledPlan, customer: SimCustomer, start: datetime | None, now: datetime
    ) -> datetime:
        if start is not None:
            return start
        if plan.trigger and plan.trigger.kind == "date" and plan.trigger.date:
            decided = self._activities.decisions.decide(
                DecideInput(
                    customer_id=customer.id,
                    playbook=plan.playbook,
                    expressions=[plan.trigger.date],
                    now=now,
                )
            )
            value = decided.values[0] if decided.values else None
            if isinstance(value, str):
                day = date.fromisoformat(value[:10])
                return datetime.combine(day, time(9, 0), tzinfo=zone(customer.timezone))
            raise SimulationInputError(
                f"cannot compute the start date '{plan.trigger.date}' for {customer.id}: "
                f"{(decided.errors or ['no value'])[0] or 'no value'}; pass --start"
            )
        return now

    async def _virtual_now(self, run: _Run) -> datetime:
        return await self.env.get_current_time() + run.offset

    async def _advance(self, run: _Run, moment: datetime) -> bool:
        """Move time to ``moment``; True if the enrollment has ended by then.

        Only `env.sleep` moves time: awaiting the result would unlock time skipping for
        as long as the call lasts, which must not be cut short.
        """
        gap = moment - await self._virtual_now(run)
        if gap > timedelta(0):
            await self.env.sleep(gap)
        description = await run.enrollment.workflow.describe()
        return description.status != WorkflowExecutionStatus.RUNNING

    async def _deliver(
        self, run: _Run, action: ScheduledEvent | ScheduledCompletion, moment: datetime
    ) -> None:
        if isinstance(action, ScheduledEvent):
            signal = EventSignal(
                id=uuid.uuid4().hex, name=action.name, at=moment, properties=action.properties
            )
            with run.sessions.begin() as session:
                ingest_event(
                    session,
                    event_id=signal.id,
                    customer_id=run.customer.id,
                    name=signal.name,
                    at=moment,
                    properties=signal.properties,
                    milestones=run.plan.milestones,
                )
            await run.enrollment.send_event(signal)
            return
        await self._settle(run)
        with run.sessions.begin() as session:
            task = session.scalars(
                select(Task)
                .where(
                    Task.step_id == action.step,
                    Task.status == TaskStatus.OPEN,
                    Task.escalation_of.is_(None),
                )
                .order_by(Task.created_at.desc())
            ).first()
            if task is None:
                run.warnings.append(
                    f"{describe_action(action)}: no open task for step "
                    f"'{action.step}' at that time; ignored"
                )
                return
            outcome = action.outcome or (task.outcomes or ["done"])[0]
            if outcome not in (task.outcomes or []):
                run.warnings.append(
                    f"{describe_action(action)}: '{outcome}' is not an outcome of "
                    f"'{action.step}' ({', '.join(task.outcomes)}); ignored"
                )
                return
            repository.complete_task(
                session, task.id, outcome, task.assignee_email or "csm", at=moment
            )
            task_id = task.id
        await run.enrollment.task_completed(
            TaskCompletion(task_id=task_id, outcome=outcome, completed_by="simulation")
        )

    async def _settle(self, run: _Run) -> None:
        """Let in-flight workflow tasks and activities finish at this moment."""
        for _ in range(3):
            await run.enrollment.status()

    async def _finish(
        self, run: _Run, horizon: datetime
    ) -> tuple[EnrollmentResult | None, list[StepRecord], EnrollmentSnapshot | None]:
        """The result and records; for a run still going at ``horizon``, no result and the
        status there (what it waits for), then the run is terminated."""
        ended = await self._advance(run, horizon)
        if ended:
            result = await run.enrollment.workflow.result()
            return result, result.records, None
        status = await run.enrollment.status()
        await run.enrollment.workflow.terminate("simulation horizon reached")
        return None, status.records, status


def _trigger_signal(
    plan: CompiledPlan, trigger: TriggerEvent | None, start: datetime
) -> EventSignal | None:
    """The trigger event as the live route would deliver it; a name the playbook does not
    start on is an input error (the live system would not enroll at all)."""
    if trigger is None:
        return None
    if plan.trigger is None or plan.trigger.kind != "event":
        kind = plan.trigger.kind if plan.trigger else "manual"
        raise SimulationInputError(
            f"--trigger {trigger.name}: {plan.playbook} does not start on an event "
            f"(its trigger is {kind})"
        )
    if trigger.name != plan.trigger.event:
        raise SimulationInputError(
            f"--trigger {trigger.name}: {plan.playbook} starts on {plan.trigger.event}, "
            f"not {trigger.name}"
        )
    return EventSignal(
        id=uuid.uuid4().hex, name=trigger.name, at=start, properties=trigger.properties
    )


def _describe_trigger(trigger: TriggerEvent) -> str:
    pairs = " ".join(f"{k}={v}" for k, v in trigger.properties.items())
    return f"{trigger.name} {pairs}".strip()


def _strangers(plan: CompiledPlan, customer: SimCustomer, team: list[SimTeamMember]) -> list[str]:
    """Warnings for an owner or task address outside the given team (a real import or API
    call refuses such an owner; the simulation goes on, counting them as members)."""
    if not team:
        return []
    members = {m.email.lower() for m in team}
    warnings = []
    if customer.owner and customer.owner.lower() not in members:
        warnings.append(f"owner {customer.owner} is not a team member (simulated as one)")
    for step in plan.steps:
        if step.task is None:
            continue
        named = [step.task.assignee, step.task.escalate_to, *(e.to for e in step.task.escalations)]
        for address in dict.fromkeys(a for a in named if "@" in a):
            if address.lower() not in members:
                warnings.append(f"step {step.id}: {address} is not a team member")
    return warnings


def _seed(
    sessions: sessionmaker[Session], customer: SimCustomer, team: list[SimTeamMember]
) -> None:
    with sessions.begin() as session:
        members = {m.email.lower(): m for m in team}
        if customer.owner and customer.owner.lower() not in members:
            members[customer.owner.lower()] = SimTeamMember(
                email=customer.owner, name=customer.owner.split("@")[0].replace(".", " ").title()
            )
        for m in members.values():
            session.add(
                TeamMember(
                    email=m.email.lower(),
                    name=m.name,
                    manager_email=m.manager.lower() if m.manager else None,
                    roles=m.roles,
                )
            )
        session.flush()
        repository.upsert_customer(session, customer.customer_data())
        for contact in customer.contacts:
            if contact.unsubscribed:
                repository.suppress(
                    session, contact.email, "unsubscribed (customer file)", source="simulation"
                )


async def simulate(plan: CompiledPlan, customer: SimCustomer, **options: Any) -> Timeline:
    """One simulation with its own server (for many, keep a `Simulator` open)."""
    async with Simulator() as sim:
        return await sim.run(plan, customer, **options)
