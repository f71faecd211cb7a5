"""Simulation: run the real interpreter on Temporal's time-skipping server and print the
customer's future, day by day, before anything ships.

Real workflow, real activities, real template rendering and real decisions: only the
side effects are captured. Each run gets a throwaway SQLite store seeded with the customer
(and the team), emails go to the capture mailer, and the enrollment's clock is shifted so
it starts at ``start`` (any date, past or future). Nothing leaves the process.

Python API::

    async with Simulator() as sim:
        timeline = await sim.run(plan, customer, events=[...], completions=[...])
"""

from __future__ import annotations

import asyncio
import re
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mailer import CaptureMailer
from activities.registry import PlaybookActivities
from engine.client.playbook import EnrollmentHandle, start_enrollment
from engine.errors import SimulationInputError, YamlSourceError
from engine.events import ingest_event
from engine.language.diagnostics import Diagnostic
from engine.language.loader import LoadedFile, parse_text
from engine.language.plan import CompiledPlan
from engine.language.sendwindow import zone
from engine.messages import (
    DecideInput,
    EnrollmentInput,
    EnrollmentResult,
    EventSignal,
    StepRecord,
    TaskCompletion,
)
from engine.statuses import EnrollmentStatus, OutboxStatus, TaskStatus
from engine.store import repository
from engine.store.models import Base, OutboxMessage, Task, TeamMember, check_timezone
from engine.temporal import find_binary, quiet_runtime
from workflows.playbook import PlaybookWorkflow

MAX_DAYS = 400
KINDS = (
    "email",
    "task",
    "task_completed",
    "task_escalated",
    "event",
    "milestone",
    "branch",
    "wait",
    "update",
    "enroll",
    "skipped",
    "exit",
    "goal",
    "end",
)


# -- inputs ------------------------------------------------------------------------------
class SimContact(BaseModel):
    model_config = {"extra": "forbid"}

    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str | None = None
    last_name: str | None = None
    role: str | None = None
    unsubscribed: bool = False


class SimCustomer(BaseModel):
    """One customer, as in ``playbooks/examples/*.yaml``."""

    model_config = {"extra": "forbid"}

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    segment: str | None = None
    timezone: str = "UTC"
    owner: str | None = None
    renewal_date: date | None = None
    health_score: int | None = Field(default=None, ge=0, le=100)
    attributes: dict[str, Any] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)
    contacts: list[SimContact] = Field(default_factory=list)

    def customer_data(self) -> repository.CustomerData:
        """This customer as the store's upsert input (contacts included)."""
        return repository.CustomerData(
            id=self.id,
            name=self.name,
            segment=self.segment,
            timezone=self.timezone,
            owner_email=self.owner,
            renewal_date=self.renewal_date,
            health_score=self.health_score,
            attributes=self.attributes,
            tags=self.tags,
            contacts=[
                repository.ContactData(
                    email=c.email, first_name=c.first_name, last_name=c.last_name, role=c.role
                )
                for c in self.contacts
            ],
        )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_timezone(value)


class SimTeamMember(BaseModel):
    model_config = {"extra": "forbid"}

    email: str
    name: str
    manager: str | None = None
    roles: list[str] = Field(default_factory=list)


class ScheduledEvent(BaseModel):
    """An event delivered on ``day`` (from the start), at ``at`` local time if given."""

    day: int = Field(ge=0)
    at: time | None = None
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)


class ScheduledCompletion(BaseModel):
    """The CSM completes the open task of ``step`` on ``day`` with ``outcome``."""

    step: str
    day: int = Field(ge=0)
    at: time | None = None
    outcome: str | None = None


# -- output ------------------------------------------------------------------------------
class TimelineEntry(BaseModel):
    at: datetime
    day: int
    step: str
    kind: str
    detail: str = ""
    to: list[str] | None = None
    subject: str | None = None
    suppressed: list[str] | None = None
    title: str | None = None
    assignee: str | None = None
    due: datetime | None = None
    priority: str | None = None
    outcome: str | None = None
    name: str | None = None
    until: datetime | None = None
    goto: str | None = None
    because: str | None = None


class SimEmail(BaseModel):
    step: str
    to: str
    status: str
    subject: str
    html: str | None = None
    text: str | None = None
    reason: str | None = None


class Timeline(BaseModel):
    """What happens to one customer in one playbook, in time order."""

    playbook: str
    version: str
    customer: str
    timezone: str
    start: datetime
    end: datetime
    outcome: str
    timeline: list[TimelineEntry] = Field(default_factory=list)
    emails: list[SimEmail] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    def public_json(self) -> dict[str, Any]:
        """The documented JSON shape (no rendered bodies)."""
        data = self.model_dump(mode="json", exclude={"emails", "timezone"}, exclude_none=True)
        return data


# -- parsing helpers ---------------------------------------------------------------------
_EVENT = re.compile(r"^(?P<day>\d+)(?:@(?P<at>\d{1,2}:\d{2}))?\s+(?P<name>[\w.:-]+)(?P<rest>.*)$")
_COMPLETE = re.compile(
    r"^(?P<step>[A-Za-z0-9_-]+)@(?P<day>\d+)(?:@(?P<at>\d{1,2}:\d{2}))?(?::(?P<outcome>[a-z0-9_]+))?$"
)


def parse_event(spec: str) -> ScheduledEvent:
    """``"<day>[@HH:MM] <name> [key=value ...]"``; values read as JSON when they can."""
    import json

    match = _EVENT.match(spec.strip())
    if not match:
        raise SimulationInputError(
            f"--event {spec!r}: expected '<day>[@HH:MM] <event name> [key=value ...]', "
            "e.g. '3@10:00 integration.connected source=salesforce'"
        )
    properties: dict[str, Any] = {}
    for pair in match["rest"].split():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SimulationInputError(f"--event {spec!r}: '{pair}' is not key=value")
        try:
            properties[key] = json.loads(value)
        except ValueError:
            properties[key] = value
    at = None
    if match["at"]:
        try:
            at = time.fromisoformat(match["at"].zfill(5))
        except ValueError:
            raise SimulationInputError(f"--event {spec!r}: '{match['at']}' is not HH:MM") from None
    return ScheduledEvent(day=int(match["day"]), at=at, name=match["name"], properties=properties)


def parse_completion(spec: str) -> ScheduledCompletion:
    """``"<step id>@<day>[@HH:MM][:<outcome>]"``."""
    match = _COMPLETE.match(spec.strip())
    if not match:
        raise SimulationInputError(
            f"--complete-task {spec!r}: expected '<step id>@<day>[@HH:MM][:<outcome>]', "
            "e.g. 'kickoff@2@14:00:held'"
        )
    try:
        at = time.fromisoformat(match["at"].zfill(5)) if match["at"] else None
    except ValueError:
        raise SimulationInputError(f"--complete-task {spec!r}: bad time") from None
    return ScheduledCompletion(
        step=match["step"], day=int(match["day"]), at=at, outcome=match["outcome"]
    )


def _located(loaded: LoadedFile, exc: ValidationError) -> list[str]:
    from engine.language.loader import validation_diagnostics

    assert loaded.document is not None
    return [str(d) for d in validation_diagnostics(loaded.document, SimCustomer, exc)]


def load_customer(path: Path) -> SimCustomer:
    """Read one customer from YAML or JSON; errors name the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SimulationInputError(f"{path}: cannot read customer file: {exc.strerror}") from None
    loaded = parse_text(text, str(path), SimCustomer)
    if loaded.model is None:
        raise SimulationInputError("\n".join(str(d) for d in loaded.diagnostics))
    return loaded.model


def load_team(path: Path) -> list[SimTeamMember]:
    from engine.language.yaml_source import load_yaml

    try:
        doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except (OSError, YamlSourceError) as exc:
        raise SimulationInputError(str(exc)) from None
    if not isinstance(doc.data, list):
        raise SimulationInputError(f"{path}:1:1: a team file is a list of people")
    members = []
    for index, item in enumerate(doc.data):
        try:
            members.append(SimTeamMember.model_validate(item))
        except ValidationError as exc:
            pos = doc.where((index,))
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
            )
            raise SimulationInputError(f"{path}:{pos.line}:{pos.column}: {problems}") from None
    return members


# -- the simulator -----------------------------------------------------------------------
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
    ) -> Timeline:
        """Simulate ``customer`` in ``plan``; return the timeline. Runs are sequential."""
        async with self._lock:
            return await self._run(
                plan, customer, team or [], start, days, events or [], completions or []
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
        if plan.trigger and plan.trigger.condition:
            holds = self._activities.decisions.decide(
                DecideInput(
                    customer_id=customer.id,
                    playbook=plan.playbook,
                    expressions=[plan.trigger.condition],
                    now=start,
                )
            )
            if holds.values and holds.values[0] is not True:
                return Timeline(
                    playbook=plan.playbook,
                    version=plan.version,
                    customer=customer.id,
                    timezone=customer.timezone,
                    start=start,
                    end=start,
                    outcome="not_enrolled",
                    warnings=[
                        f"trigger condition is false for {customer.id}: {plan.trigger.condition}"
                    ],
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
                started_at=start,
                use_search_attributes=False,
                clock_offset_seconds=offset.total_seconds(),
            ),
            id=f"sim-{uuid.uuid4().hex}",
            task_queue=self._queue,
        )
        run = _Run(sessions, handle, plan, customer, start, offset)
        await self._settle(run)  # the first workflow task runs before any time is skipped
        for moment, action in _schedule(start, tz, events, completions):
            if moment > horizon:
                run.warnings.append(f"{_describe(action)} is after the end of the simulation")
                continue
            if await self._advance(run, moment):
                run.warnings.append(f"{_describe(action)}: the enrollment had already ended")
                break
            await self._deliver(run, action, moment)
        result, records = await self._finish(run, horizon)
        return _timeline(run, result, records, horizon)

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
                    f"{_describe(action)}: no open task for step "
                    f"'{action.step}' at that time; ignored"
                )
                return
            outcome = action.outcome or (task.outcomes or ["done"])[0]
            if outcome not in (task.outcomes or []):
                run.warnings.append(
                    f"{_describe(action)}: '{outcome}' is not an outcome of "
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
    ) -> tuple[EnrollmentResult | None, list[StepRecord]]:
        ended = await self._advance(run, horizon)
        if ended:
            result = await run.enrollment.workflow.result()
            return result, result.records
        status = await run.enrollment.status()
        await run.enrollment.workflow.terminate("simulation horizon reached")
        return None, status.records


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


def _schedule(
    start: datetime, tz: Any, events: list[ScheduledEvent], completions: list[ScheduledCompletion]
) -> list[tuple[datetime, ScheduledEvent | ScheduledCompletion]]:
    def moment(day: int, at: time | None) -> datetime:
        when = start + timedelta(days=day)
        if at is None:
            return when
        return datetime.combine(when.astimezone(tz).date(), at, tzinfo=tz)

    actions: list[ScheduledEvent | ScheduledCompletion] = [*events, *completions]
    out = [(moment(a.day, a.at), a) for a in actions]
    return sorted(out, key=lambda item: item[0])


def _describe(action: ScheduledEvent | ScheduledCompletion) -> str:
    if isinstance(action, ScheduledEvent):
        return f"event {action.name} on day {action.day}"
    return f"completing {action.step} on day {action.day}"


_FINISH_KIND: dict[str, str] = {
    EnrollmentStatus.EXITED: "exit",
    EnrollmentStatus.GOAL_REACHED: "goal",
    EnrollmentStatus.COMPLETED: "end",
    EnrollmentStatus.CANCELLED: "end",
}


def _timeline(
    run: _Run, result: EnrollmentResult | None, records: list[StepRecord], horizon: datetime
) -> Timeline:
    tz = zone(run.customer.timezone)
    with run.sessions() as session:
        outbox = list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        escalations = {
            t.escalation_of: t
            for t in session.scalars(select(Task).where(Task.escalation_of.is_not(None)))
        }
    emails = [
        SimEmail(
            step=o.step_id or "",
            to=o.contact_email,
            status=o.status,
            subject=o.subject,
            html=o.html,
            text=o.text,
            reason=o.reason,
        )
        for o in outbox
    ]
    entries: list[TimelineEntry] = []
    for record in records:
        entry = _entry(record, run.start, tz, escalations)
        if entry is not None:
            entries.append(entry)
    if result is None:
        last = records[-1] if records else None
        outcome = "running"
        end = horizon
        waiting = f" (still {last.detail})" if last and last.kind == "wait" else ""
        run.warnings.append(
            f"the enrollment was still running at the end of the simulation{waiting}"
        )
    else:
        outcome = result.outcome
        end = entries[-1].at if entries else run.start
    return Timeline(
        playbook=run.plan.playbook,
        version=run.plan.version,
        customer=run.customer.id,
        timezone=run.customer.timezone,
        start=run.start.astimezone(tz),
        end=end.astimezone(tz),
        outcome=outcome,
        timeline=entries,
        emails=emails,
        warnings=run.warnings,
    )


def _entry(
    record: StepRecord, start: datetime, tz: Any, escalations: dict[str | None, Task]
) -> TimelineEntry | None:
    at = record.at.astimezone(tz)
    day = int((record.at - start).total_seconds() // 86400)
    base: dict[str, Any] = {"at": at, "day": day, "step": record.step, "detail": record.detail}
    data = record.data
    kind = record.kind
    if kind == "email":
        sent = [d for d in data.get("deliveries", []) if d["status"] != OutboxStatus.SUPPRESSED]
        held = [
            d["contact"]
            for d in data.get("deliveries", [])
            if d["status"] == OutboxStatus.SUPPRESSED
        ]
        subjects = [d["subject"] for d in sent if d.get("subject")]
        return TimelineEntry(
            kind="email",
            to=[d["contact"] for d in sent],
            subject=subjects[0] if subjects else None,
            suppressed=held or None,
            **base,
        )
    if kind == "email_failed":
        return TimelineEntry(kind="email", **base)
    if kind == "task":
        due = data.get("due_at")
        return TimelineEntry(
            kind="task",
            title=data.get("title"),
            assignee=data.get("assignee"),
            due=datetime.fromisoformat(due).astimezone(tz) if due else None,
            priority=data.get("priority"),
            **base,
        )
    if kind == "task_escalated":
        # The record names only the overdue task; the escalation task (whom it went to)
        # is in the store.
        escalation = escalations.get(data.get("task_id"))
        if escalation is None:
            return TimelineEntry(kind=kind, **base)
        base["detail"] = f"{record.detail} ({escalation.assignee_email or 'unassigned'})"
        return TimelineEntry(
            kind=kind,
            title=escalation.title,
            assignee=escalation.assignee_email,
            due=escalation.due_at.astimezone(tz) if escalation.due_at else None,
            priority=escalation.priority,
            **base,
        )
    if kind == "task_completed":
        return TimelineEntry(kind=kind, outcome=data.get("outcome"), **base)
    if kind in ("event", "milestone"):
        return TimelineEntry(kind=kind, name=data.get("name"), **base)
    if kind == "wait":
        until = data.get("until")
        return TimelineEntry(
            kind="wait",
            until=datetime.fromisoformat(until).astimezone(tz) if until else None,
            name=data.get("for"),
            **base,
        )
    if kind == "branch":
        return TimelineEntry(
            kind="branch", goto=data.get("goto"), because=data.get("because"), **base
        )
    if kind in ("update", "enroll", "skipped"):
        return TimelineEntry(kind=kind, **base)
    if kind == "expression_error":
        return TimelineEntry(kind="skipped", **{**base, "detail": f"error: {record.detail}"})
    if kind in _FINISH_KIND:
        return TimelineEntry(kind=_FINISH_KIND[kind], outcome=data.get("outcome"), **base)
    return None


async def simulate(plan: CompiledPlan, customer: SimCustomer, **options: Any) -> Timeline:
    """One simulation with its own server (for many, keep a `Simulator` open)."""
    async with Simulator() as sim:
        return await sim.run(plan, customer, **options)


__all__ = [
    "KINDS",
    "Diagnostic",
    "ScheduledCompletion",
    "ScheduledEvent",
    "SimCustomer",
    "SimulationInputError",
    "Simulator",
    "Timeline",
    "TimelineEntry",
    "load_customer",
    "load_team",
    "parse_completion",
    "parse_event",
    "simulate",
]
