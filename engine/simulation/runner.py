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
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mailer import CaptureMailer
from activities.registry import PlaybookActivities
from engine.client.changes import change_refusal, snapshot_before
from engine.client.connection import find_binary, quiet_runtime
from engine.client.playbook import EnrollmentHandle, start_enrollment
from engine.client.sandbox import workflow_runner
from engine.errors import SimulationInputError
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan
from engine.language.sendwindow import zone
from engine.messages import (
    INTERPRETER_GENERATION,
    CustomerChanged,
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
from engine.simulation.timeline import Timeline, TimelineEntry, build_timeline, health_move
from engine.statuses import TaskStatus
from engine.store import health, repository
from engine.store.events import ingest_event
from engine.store.models import Base, Customer, Task, TeamMember
from workflows.playbook import PlaybookWorkflow

MAX_DAYS = 400


@dataclass
class _Daily:
    """The daily health recompute (the ``health-daily`` Schedule, live)."""


_DAILY = _Daily()
Action = ScheduledEvent | ScheduledCompletion | _Daily


@dataclass
class _Health:
    """Health computed as live during a run: each move a ``health`` timeline entry."""

    sessions: sessionmaker[Session]
    card: Scorecard
    customer_id: str
    start: datetime
    tz: tzinfo
    entries: list[TimelineEntry] = field(default_factory=list)

    def rescore(self, at: datetime, entry: bool = True) -> health.Recorded | None:
        """Compute and record the customer's health at ``at``; note the move if ``entry``."""
        with self.sessions.begin() as session:
            recorded = health.recompute(session, self.card, self.customer_id, at)
        if entry:
            self.note(recorded, at, [])
        return recorded

    def noted(self, recorded: health.Recorded, at: datetime) -> None:
        """`note` for a health an `update` step recomputed (it starts nothing)."""
        self.note(recorded, at, [])

    def note(self, recorded: health.Recorded | None, at: datetime, started: list[str]) -> None:
        line = health_move(recorded, started) if recorded is not None else None
        if line is None:
            return
        self.entries.append(
            TimelineEntry(
                at=at.astimezone(self.tz),
                day=int((at.astimezone(UTC) - self.start).total_seconds() // 86400),
                step="health",
                kind="health",
                detail=line,
            )
        )


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
            workflow_runner=workflow_runner(),
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
        scorecard: Scorecard | None = None,
    ) -> Timeline:
        """Simulate ``customer`` in ``plan``; return the timeline. Runs are sequential.

        ``trigger`` is the event that enrolls the customer in an ``on_event`` playbook: the
        trigger's ``if`` is tried against it first, and the enrollment gets it as its
        trigger event (``event.properties`` in templates and conditions).

        With a ``scorecard`` (the project's ``health.yaml``), health is computed as live:
        on each event it measures and daily, each move is a ``health`` row of the
        timeline, and an ``on_change`` playbook starts when its condition becomes true
        (not at ``start``).
        """
        async with self._lock:
            return await self._run(
                plan,
                customer,
                team or [],
                start,
                days,
                events or [],
                completions or [],
                trigger,
                scorecard,
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
        scorecard: Scorecard | None,
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
        _added_at(sessions, customer.id, start)
        scoring = _Health(sessions, scorecard, customer.id, start, tz) if scorecard else None
        # An `update` step recomputes health as on a live worker; its moves join the timeline.
        self._activities.customers.scorecard = scorecard
        self._activities.customers.on_health = scoring.noted if scoring else None
        moments: list[tuple[datetime, Action]] = list(schedule(start, tz, events, completions))
        if scoring is not None:  # the daily recompute, after the moment's events
            span = (horizon - start).days
            moments += [(start + timedelta(days=d), _DAILY) for d in range(1, span + 1)]
            moments.sort(key=lambda item: (item[0], isinstance(item[1], _Daily)))
        on_change = plan.trigger is not None and plan.trigger.kind == "change"
        run: _Run | None = None
        warnings = _strangers(plan, customer, team)
        if scoring is None or not on_change:
            run = await self._start(plan, customer, signal, start, start, warnings)
        for moment, action in moments:
            if moment > horizon:
                if not isinstance(action, _Daily):
                    warnings.append(f"{describe_action(action)} is after the end of the simulation")
                continue
            if run is None:  # an on_change playbook, not started yet
                assert scoring is not None
                started = await self._before_start(plan, scoring, action, moment, warnings)
                if started:
                    run = await self._start(plan, customer, None, moment, start, warnings)
                continue
            if await self._advance(run, moment):
                if not isinstance(action, _Daily):
                    warnings.append(f"{describe_action(action)}: the enrollment had already ended")
                break
            if isinstance(action, _Daily):
                assert scoring is not None
                await _tell(run, scoring.rescore(moment))
                continue
            await self._deliver(run, action, moment)
            if isinstance(action, ScheduledEvent) and scoring and scoring.card.reads(action.name):
                await _tell(run, scoring.rescore(moment))
        if run is None:
            assert plan.trigger is not None and scoring is not None
            warnings.append(
                f"{customer.id} was not enrolled: the trigger's condition "
                f"{plan.trigger.change} did not become true in the simulated days"
            )
            return Timeline(
                playbook=plan.playbook,
                version=plan.version,
                customer=customer.id,
                timezone=customer.timezone,
                start=start.astimezone(tz),
                end=horizon.astimezone(tz),
                outcome="not_enrolled",
                timeline=scoring.entries,
                warnings=warnings,
            )
        result, records, waiting = await self._finish(run, horizon)
        timeline = build_timeline(
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
        if scoring is not None:  # a health move comes before what it starts
            timeline.timeline = sorted(
                [*scoring.entries, *timeline.timeline], key=lambda entry: entry.at
            )
        return timeline

    async def _start(
        self,
        plan: CompiledPlan,
        customer: SimCustomer,
        signal: EventSignal | None,
        at: datetime,
        start: datetime,
        warnings: list[str],
    ) -> _Run:
        """Start the enrollment at simulated time ``at`` (the run's days count from
        ``start``) and let its first workflow task run."""
        offset = at - await self.env.get_current_time()
        handle = await start_enrollment(
            self.env.client,
            EnrollmentInput(
                plan=plan,
                customer_id=customer.id,
                enrollment_id=f"{plan.playbook}/{customer.id}",
                trigger_event=signal,
                started_at=at,
                use_search_attributes=False,
                clock_offset_seconds=offset.total_seconds(),
                generation=INTERPRETER_GENERATION,
            ),
            id=f"sim-{uuid.uuid4().hex}",
            task_queue=self._queue,
        )
        run = _Run(self._activities.sessions, handle, plan, customer, start, offset, warnings)
        await self._settle(run)  # the first workflow task runs before any time is skipped
        return run

    async def _before_start(
        self,
        plan: CompiledPlan,
        scoring: _Health,
        action: Action,
        moment: datetime,
        warnings: list[str],
    ) -> bool:
        """Before an ``on_change`` playbook starts: events are stored and move health, and
        the trigger is judged on each move as live; True when it starts the enrollment."""
        if isinstance(action, ScheduledCompletion):
            warnings.append(f"{describe_action(action)}: the enrollment has not started yet")
            return False
        sessions = scoring.sessions
        if isinstance(action, ScheduledEvent):
            with sessions.begin() as session:
                ingest_event(
                    session,
                    event_id=uuid.uuid4().hex,
                    customer_id=scoring.customer_id,
                    name=action.name,
                    at=moment,
                    properties=action.properties,
                    milestones=plan.milestones,
                )
            if not scoring.card.reads(action.name):
                return False
        before = snapshot_before(sessions, scoring.customer_id, moment)
        recorded = scoring.rescore(moment, entry=False)
        started = change_refusal(sessions, plan, scoring.customer_id, before, moment) is None
        scoring.note(recorded, moment, [plan.playbook] if started else [])
        return started

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


async def _tell(run: _Run, recorded: health.Recorded | None) -> None:
    """Tell the enrollment its customer's health moved, as live (`customer_changed`): a
    ``wait_for: when``, ``goal: when`` or ``exit: if`` over health is judged again."""
    if recorded is not None and (recorded.changed or recorded.signals_changed):
        change = CustomerChanged(customer_id=run.customer.id, fields=["health"])
        await run.enrollment.customer_changed(change)


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


def _added_at(sessions: sessionmaker[Session], customer_id: str, at: datetime) -> None:
    """The customer was added at the simulated start (a feature_unused signal counts from it)."""
    with sessions.begin() as session:
        session.execute(update(Customer).where(Customer.id == customer_id).values(created_at=at))


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
