"""Simulating a whole book: every playbook of a project over every customer, for months.

`simulate_book` runs the real triggers over the book on ONE time-skipping Temporal server
with one worker: the date and schedule sweep (`engine.client.sweeps.sweep`) at simulated
time, every event of the events file through the live event router
(`engine.client.routing.EventRouter`, one batch per moment), and every enrollment that
starts through the real `PlaybookWorkflow` and activities. As in the single-customer simulator
(`engine.simulation.runner`), side effects are captured: a throwaway SQLite store, the
capture mailer, and every enrollment's clock shifted so the book starts at ``start``.

Time moves forward with ``env.sleep`` from one moment to the next (a sweep, an event, a
task completion): the server skips time while no workflow task or activity is running,
so waits and timers fire where they fall. CSMs complete each open task ``task_days``
after it appears (its first outcome), or never with ``task_days=None``.

The result, a `BookResult`, has every action (customer, playbook, version, step, kind,
time in the customer's zone), every enrollment run with its outcome (or what a run still
going at the end waits for), a `BookSummary`: emails per day and per playbook, tasks
per CSM per week, and every contact that went over the delivery policy's caps
(`engine.language.delivery.cap_violations` on what was sent; none when the budget held).
"""

from __future__ import annotations

import time as clock
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dt_time
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import create_engine, select, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowExecutionStatus,
    WorkflowHandle,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.customers import CustomerActivities
from activities.mailer import CaptureMailer
from activities.registry import PlaybookActivities
from engine.client.changes import change_plans, rescore_all
from engine.client.connection import find_binary, quiet_runtime
from engine.client.deployment import deploy_working_copy
from engine.client.enrollment import enroll, reenroll_allowed
from engine.client.playbook import EnrollmentHandle
from engine.client.routing import EventRouter
from engine.client.sandbox import workflow_runner
from engine.client.sweeps import sweep
from engine.errors import AlreadyEnrolled, ConflictError, PlaybookError, SimulationInputError
from engine.language.delivery import Send, cap_violations
from engine.language.plan import CapPlan, CompiledPlan, DeliveryPlan
from engine.language.sendwindow import zone
from engine.messages import (
    WORKFLOW_NAME,
    EnrollmentInput,
    EnrollmentSnapshot,
    StepRecord,
    TaskCompletion,
)
from engine.project import Project
from engine.services import customers
from engine.simulation.book_inputs import UPDATABLE, Book, BookCustomer, BookEvent
from engine.simulation.inputs import SimTeamMember
from engine.simulation.timeline import Waiting, describe_health
from engine.statuses import OutboxStatus, TaskStatus
from engine.store import repository
from engine.store.context import all_customer_snapshots
from engine.store.deployments import deployed_plans
from engine.store.events import IncomingEvent
from engine.store.health import Recorded
from engine.store.models import Base, Customer, Task, TeamMember
from workflows.playbook import PlaybookWorkflow

MAX_BOOK_DAYS = 800
SENT = {OutboxStatus.CAPTURED.value, OutboxStatus.SENT.value}
# The actions a book lists (records that are effects, or ends); waits and branches are
# in each enrollment's own timeline.
ACTION_KINDS = ("email", "email_failed", "task", "task_escalated", "update", "enroll")


# -- the result ----------------------------------------------------------------------------
class BookAction(BaseModel):
    """One effect of one enrollment: an email, a task, a customer update, an enrollment."""

    at: datetime  # in the customer's time zone
    day: int
    customer: str
    playbook: str
    version: str  # short version
    enrollment: str  # the run's key
    step: str
    kind: str
    detail: str = ""
    to: list[str] = Field(default_factory=list)  # an email's delivered contacts
    suppressed: list[str] = Field(default_factory=list)  # ... and those not emailed
    assignee: str | None = None  # a task's CSM


class BookEnrollment(BaseModel):
    """One enrollment run and how it ended (or, still going, what it waits for)."""

    enrollment: str  # the workflow ID
    key: str
    customer: str
    playbook: str
    version: str
    cycle: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    status: str
    outcome: str | None = None
    waiting: str | None = None


class BookHealthChange(BaseModel):
    """A customer's health moving: its score or band, or a risk signal turning on; and the
    ``on_change`` playbooks that started on it."""

    at: datetime  # in the customer's time zone
    day: int
    customer: str
    old_score: int | None = None
    score: int | None = None
    old_band: str | None = None
    band: str
    signals: list[str] = Field(default_factory=list)  # the texts of signals that turned on
    started: list[str] = Field(default_factory=list)  # playbooks

    def describe(self) -> str:
        """``weekly active users fell 45% (11 -> 6) over 14d; health 62 -> 38 (red); risk
        started``."""
        return describe_health(
            self.old_score, self.score, self.old_band, self.band, self.signals, self.started
        )


class BookSummary(BaseModel):
    """The workload: emails per day and per playbook, tasks per CSM per ISO week."""

    customers: int
    enrollments: int
    emails: int
    tasks: int
    outcomes: dict[str, dict[str, int]] = Field(default_factory=dict)  # playbook -> outcome
    emails_per_day: dict[date, int] = Field(default_factory=dict)
    emails_per_playbook: dict[str, int] = Field(default_factory=dict)
    tasks_per_csm_week: dict[str, dict[str, int]] = Field(default_factory=dict)


class BookResult(BaseModel):
    """What `simulate_book` found: the actions, the enrollments and the summary."""

    start: datetime
    end: datetime
    days: int
    actions: list[BookAction] = Field(default_factory=list)
    enrollments: list[BookEnrollment] = Field(default_factory=list)
    # Every health move (score, band, a risk signal turning on), from the events and the
    # daily recompute with the project's scorecard; empty without one.
    health: list[BookHealthChange] = Field(default_factory=list)
    summary: BookSummary
    warnings: list[str] = Field(default_factory=list)
    # Every contact and day over the delivery policy's caps (`cap_violations`): empty when
    # the contact budget held across every playbook.
    over_caps: list[str] = Field(default_factory=list)
    seconds: float = 0.0  # real time the run took

    @property
    def contacts_over_caps(self) -> int:
        """How many contacts went over a cap on some day."""
        return len({line.split(":", 1)[0] for line in self.over_caps})


@dataclass
class ProjectSwitch:
    """On ``day``, this project's playbooks are deployed (`playbook deploy`): from then on
    the triggers start the new versions; runs already going keep theirs."""

    day: int
    project: Project


# -- recording every enrollment the run starts -----------------------------------------
@dataclass
class _Started:
    workflow_id: str
    run_id: str | None
    input: EnrollmentInput


class _Recorder(Interceptor):
    """A client interceptor that remembers every `PlaybookWorkflow` started through it."""

    def __init__(self) -> None:
        self.started: list[_Started] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _RecordingOutbound(next, self)


class _RecordingOutbound(OutboundInterceptor):
    def __init__(self, next: OutboundInterceptor, recorder: _Recorder) -> None:
        super().__init__(next)
        self._recorder = recorder

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        handle = await super().start_workflow(input)
        if input.workflow == WORKFLOW_NAME and input.args:
            payload = input.args[0]
            if isinstance(payload, EnrollmentInput):
                self._recorder.started.append(
                    _Started(handle.id, handle.first_execution_run_id, payload)
                )
        return handle


# -- the run -------------------------------------------------------------------------------
@dataclass(order=True)
class _Moment:
    at: datetime
    order: int  # at one moment: switches, then customers, events, completions, sweeps
    seq: int
    what: Any = field(compare=False)


@dataclass
class _Sweep:
    day: int


@dataclass
class _Completions:
    day: int


@dataclass
class _Rescore:
    """The daily health recompute (the ``health-daily`` Schedule, live)."""

    day: int


@dataclass
class _Book:
    """Everything one run holds."""

    env: WorkflowEnvironment
    client: Client
    sessions: sessionmaker[Session]
    queue: str
    offset: timedelta
    plans: dict[str, CompiledPlan]
    router: EventRouter
    recorder: _Recorder
    customers: dict[str, BookCustomer]
    task_days: int | None
    warnings: list[str] = field(default_factory=list)
    # Open tasks the CSMs have seen: task id -> the day they complete it.
    due_tasks: dict[str, int] = field(default_factory=dict)
    # The last moment the clock was moved to: the moments after it at the same time need
    # no round trip to the server.
    reached: datetime | None = None
    # Each enrollment run's delivery policy (by its key), for the cap check.
    delivery: dict[str, DeliveryPlan | None] = field(default_factory=dict)
    begin: datetime | None = None
    health: list[BookHealthChange] = field(default_factory=list)
    # The activities' `update` steps, which recompute health with the scorecard in use.
    updates: CustomerActivities | None = None

    async def now(self) -> datetime:
        return await self.env.get_current_time() + self.offset


async def simulate_book(
    project: Project,
    book: Book,
    events: Sequence[BookEvent] = (),
    *,
    days: int = 365,
    start: date | datetime | None = None,
    switches: Sequence[ProjectSwitch] = (),
    task_days: int | None = 2,
    sweep_hours: int = 24,
    progress: Callable[[int, int], None] | None = None,
    env: WorkflowEnvironment | None = None,
) -> BookResult:
    """Run every playbook of ``project`` over ``book`` for ``days``; see the module doc.

    ``start`` (a date: midnight UTC; default today) is day 0. ``switches`` change the
    project's playbooks from a day on. The sweep runs every ``sweep_hours`` (hourly live;
    daily by default here, which every customer's calendar day still sees once).
    ``progress(day, days)`` is called as days pass. ``env`` reuses a time-skipping server
    (its clock must not be held by anything else); by default one is started.
    """
    if not 0 < days <= MAX_BOOK_DAYS:
        raise SimulationInputError(f"days must be between 1 and {MAX_BOOK_DAYS}")
    if not 1 <= sweep_hours <= 24:
        raise SimulationInputError("sweep_hours must be between 1 and 24")
    known = {c.id for c in book.customers}
    for event in events:
        if event.customer not in known:
            raise SimulationInputError(f"{event.describe()}: no customer '{event.customer}'")
    for switch in switches:
        if not 0 <= switch.day <= days:
            raise SimulationInputError(f"a project switch on day {switch.day} is outside the run")
    if isinstance(start, datetime):
        begin = start if start.tzinfo else start.replace(tzinfo=UTC)
    else:
        day0 = start or datetime.now(UTC).date()
        begin = datetime(day0.year, day0.month, day0.day, tzinfo=UTC)
    began = clock.monotonic()
    own_env = env is None
    if env is None:
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(find_binary("temporal-test-server")),
            data_converter=pydantic_data_converter,
            runtime=quiet_runtime(),
        )
    try:
        with TemporaryDirectory(prefix="playbook-book-") as tmp:
            result = await _run(
                env,
                Path(tmp),
                project,
                book,
                events,
                days,
                begin,
                switches,
                task_days,
                sweep_hours,
                progress,
            )
    finally:
        if own_env:
            await env.shutdown()
    result.seconds = round(clock.monotonic() - began, 1)
    return result


async def _run(
    env: WorkflowEnvironment,
    tmp: Path,
    project: Project,
    book: Book,
    events: Sequence[BookEvent],
    days: int,
    begin: datetime,
    switches: Sequence[ProjectSwitch],
    task_days: int | None,
    sweep_hours: int,
    progress: Callable[[int, int], None] | None,
) -> BookResult:
    engine = create_engine(
        f"sqlite:///{tmp / 'book.db'}", connect_args={"check_same_thread": False}
    )
    sa_event.listen(engine, "connect", _throwaway_pragmas)
    Base.metadata.create_all(engine)
    sessions = sessionmaker(engine, expire_on_commit=False)
    recorder = _Recorder()
    config = env.client.config()
    config["interceptors"] = [recorder]
    client = Client(**config)
    queue = f"book-{uuid.uuid4().hex[:8]}"
    offset = begin - await env.get_current_time()
    state = _Book(
        env=env,
        client=client,
        sessions=sessions,
        queue=queue,
        offset=offset,
        plans=dict(project.plans),
        router=EventRouter(
            sessions,
            client,
            dict(project.plans),
            project.milestones,
            queue,
            use_search_attributes=False,
            clock_offset_seconds=offset.total_seconds(),
            scorecard=project.scorecard,
        ),
        recorder=recorder,
        customers={c.id: c for c in book.customers},
        task_days=task_days,
        begin=begin,
    )
    _deploy(state, project, "the book's start")
    _seed_team(sessions, book)
    activities = PlaybookActivities(
        sessions,
        CaptureMailer(),
        public_base_url="https://sim.invalid",
        enroller=_enroller(state),
        scorecard=project.scorecard,
    )
    activities.customers.on_health = lambda recorded, at: _note_health(state, recorded, [], at)
    state.updates = activities.customers
    moments = _moments(book, events, days, begin, switches, sweep_hours)
    horizon = begin + timedelta(days=days)
    with ThreadPoolExecutor(max_workers=4) as pool:
        async with Worker(
            client,
            task_queue=queue,
            workflows=[PlaybookWorkflow],
            activities=activities.all(),
            activity_executor=pool,
            workflow_runner=workflow_runner(),
        ):
            reported = -1
            index = 0
            while index < len(moments) and moments[index].at <= horizon:
                moment = moments[index]
                await _advance(state, moment.at)
                batch = _product_events(moments, index)
                if batch:  # the product's events of one moment go in as one batch, as live
                    await _deliver_events(state, batch, moment.at)
                    index += len(batch)
                else:
                    await _perform(state, moment)
                    index += 1
                day = (moment.at - begin).days
                if progress is not None and day != reported:
                    progress(min(day, days), days)
                    reported = day
            await _advance(state, horizon)
            if progress is not None:
                progress(days, days)
            actions, enrollments = await _collect(state, begin, horizon)
    engine.dispose()
    return BookResult(
        start=begin,
        end=horizon,
        days=days,
        actions=actions,
        enrollments=enrollments,
        health=state.health,
        summary=summarize(actions, enrollments, len(book.customers)),
        warnings=state.warnings,
        over_caps=check_caps(actions, book, state.delivery),
    )


def _throwaway_pragmas(connection: Any, _: Any) -> None:
    """The store is thrown away after the run: no need to wait for the disk on commit
    (a year of a hundred customers commits some hundred thousand times)."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA synchronous=OFF")
    cursor.execute("PRAGMA journal_mode=MEMORY")
    cursor.close()


def _moments(
    book: Book,
    events: Sequence[BookEvent],
    days: int,
    begin: datetime,
    switches: Sequence[ProjectSwitch],
    sweep_hours: int,
) -> list[_Moment]:
    """Everything that happens, in time order (ties: switch, customer, event, tasks, health,
    sweep)."""
    out: list[_Moment] = []

    def add(at: datetime, order: int, what: Any) -> None:
        out.append(_Moment(max(at, begin), order, len(out), what))

    for switch in switches:
        add(begin + timedelta(days=switch.day), 0, switch)
    zones = {c.id: zone(c.timezone) for c in book.customers}

    def local(customer: str, day: int, at: dt_time | None) -> datetime:
        """Day ``day`` of the customer's own calendar, at ``at`` (midnight if None)."""
        when = begin.date() + timedelta(days=day)
        return datetime.combine(when, at or dt_time(0), tzinfo=zones[customer])

    for customer in book.customers:
        if customer.added_day:
            add(local(customer.id, customer.added_day, None), 1, customer)
        else:
            add(begin, 1, customer)
    for event in events:
        add(local(event.customer, event.day, event.at), 2, event)
    for day in range(days + 1):
        add(begin + timedelta(days=day), 3, _Completions(day))
        add(begin + timedelta(days=day), 4, _Rescore(day))
        for hour in range(0, 24, sweep_hours):
            add(begin + timedelta(days=day, hours=hour), 5, _Sweep(day))
    return sorted(out)


async def _advance(state: _Book, moment: datetime) -> None:
    """Move the server's clock to ``moment`` (only `env.sleep` moves it)."""
    if state.reached is not None and moment <= state.reached:
        return
    gap = moment - await state.now()
    if gap > timedelta(0):
        await state.env.sleep(gap)
    state.reached = moment


async def _perform(state: _Book, moment: _Moment) -> None:
    what = moment.what
    if isinstance(what, ProjectSwitch):
        _deploy(state, what.project, f"day {what.day} of the book")
        state.router.milestones = what.project.milestones
        state.router.scorecard = what.project.scorecard
        if state.updates is not None:
            state.updates.scorecard = what.project.scorecard
    elif isinstance(what, BookCustomer):
        _add_customer(state.sessions, what, moment.at)
    elif isinstance(what, BookEvent):
        await _deliver(state, what, moment.at)
    elif isinstance(what, _Completions):
        await _complete_tasks(state, what.day)
    elif isinstance(what, _Rescore):
        await _rescore(state, moment.at)
    elif isinstance(what, _Sweep):
        swept = [
            plan
            for plan in state.plans.values()
            if plan.trigger is not None and plan.trigger.kind in ("date", "schedule")
        ]
        with state.sessions() as session:
            book = all_customer_snapshots(session)  # once for every swept playbook
        for plan in swept:
            await sweep(
                state.sessions,
                state.client,
                plan,
                state.queue,
                moment.at,
                use_search_attributes=False,
                clock_offset_seconds=state.offset.total_seconds(),
                customers=book,
            )


def _deploy(state: _Book, project: Project, when: str) -> None:
    """Deploy the project's playbooks as `playbook deploy` does; the triggers then use the
    deployed plans, as live (a run keeps the version it started with)."""
    try:
        deploy_working_copy(state.sessions, project, by="simulation", message=when)
    except PlaybookError as exc:
        raise SimulationInputError(f"cannot deploy {project.root} on {when}: {exc}") from None
    with state.sessions() as session:
        state.plans = deployed_plans(session)
    state.router.plans = state.plans


def _product_events(moments: Sequence[_Moment], index: int) -> list[BookEvent]:
    """The product events (``kind: event``) at ``moments[index]``'s time, from there on."""
    batch: list[BookEvent] = []
    for moment in moments[index:]:
        what = moment.what
        if moment.at != moments[index].at or not (
            isinstance(what, BookEvent) and what.kind == "event"
        ):
            break
        batch.append(what)
    return batch


async def _deliver_events(state: _Book, events: Sequence[BookEvent], at: datetime) -> None:
    """Product events of one moment through the live router's batch path."""
    incoming = []
    for event in events:
        assert event.name is not None
        incoming.append(
            IncomingEvent(uuid.uuid4().hex, event.customer, event.name, at, event.properties)
        )
    answers = await state.router.handle_batch(incoming, now=at)
    for event, routed in zip(events, answers, strict=True):
        if routed.status == "unknown_customer":
            state.warnings.append(f"{event.describe()}: the customer is not in the store yet")
        if routed.health is not None:
            _note_health(state, routed.health, routed.enrolled, at)


async def _deliver(state: _Book, event: BookEvent, at: datetime) -> None:
    """An event through the live router; an update or unsubscribe into the store."""
    if event.kind == "event":
        await _deliver_events(state, [event], at)
        return
    with state.sessions.begin() as session:
        customer = repository.get_customer(session, event.customer)
        if customer is None:
            state.warnings.append(f"{event.describe()}: the customer is not in the store yet")
            return
        if event.kind == "update":
            assert event.update is not None
            payload = _customer_update(event.customer, event.update, customer)
        else:
            payload = None
            _unsubscribe(session, event, customer)
    if payload is not None:
        # As the API's PUT /customers/{id}: save, then tell the running enrollments which
        # dates moved, so their `wait: until` follows.
        changed = customers.save_customer(state.sessions, payload)
        await customers.notify_changed(state.client, state.sessions, event.customer, changed)


async def _rescore(state: _Book, at: datetime) -> None:
    """The daily recompute with the scorecard in use, and the on_change triggers it fires."""
    card = state.router.scorecard
    if card is None:
        return
    # The router's target: the book's client, store and queue, its clock's offset.
    done = await rescore_all(state.router.change_target, card, state.plans, at)
    for recorded, started in done:
        _note_health(state, recorded, started, at)


def _note_health(state: _Book, recorded: Recorded, started: list[str], at: datetime) -> None:
    """Keep a health move for the result: a score or band change, a signal turning on."""
    result = recorded.result
    turned_on = recorded.signals_on
    if not (recorded.changed or turned_on):
        return
    assert state.begin is not None
    changing = {p.playbook for p in change_plans(state.plans)}
    tz = zone(state.customers[recorded.customer_id].timezone)
    state.health.append(
        BookHealthChange(
            at=at.astimezone(tz),
            day=(at - state.begin).days,
            customer=recorded.customer_id,
            old_score=recorded.old_score,
            score=result.score if result.score is not None else recorded.old_score,
            old_band=recorded.old_band,
            band=result.band if result.score is not None else (recorded.old_band or "unknown"),
            signals=[s.text for s in result.signals if s.name in turned_on],
            started=[p for p in (w.split("/")[0] for w in started) if p in changing],
        )
    )


def _unsubscribe(session: Session, event: BookEvent, customer: Any) -> None:
    """As the unsubscribe link does: the address suppressed, its contacts unsubscribed."""
    emails = (
        [c.email for c in customer.contacts]
        if event.unsubscribe is True
        else [str(event.unsubscribe)]
    )
    for email in emails:
        repository.suppress(
            session,
            email,
            f"unsubscribed via link (customer {event.customer})",
            source="unsubscribe link",
        )


def _customer_update(customer_id: str, update: dict[str, Any], row: Any) -> repository.CustomerData:
    """The fields a CRM sets (the API's PUT /customers/{id}), attributes merged."""
    data: dict[str, Any] = {"id": customer_id, "name": row.name}
    for name, value in update.items():
        if name == "owner":
            data["owner_email"] = value
        elif name == "attributes":
            data["attributes"] = {**(row.attributes or {}), **value}
        elif name in UPDATABLE or name == "tags":
            data[name] = value
    try:
        return repository.CustomerData(**data)
    except ValueError as exc:
        raise SimulationInputError(f"{customer_id}: update {update}: {exc}") from None


async def _complete_tasks(state: _Book, day: int) -> None:
    """CSMs complete each open task ``task_days`` after it appeared, with its first outcome."""
    if state.task_days is None:
        return
    now = await state.now()
    with state.sessions() as session:
        open_tasks = session.scalars(
            select(Task).where(Task.status == TaskStatus.OPEN, Task.escalation_of.is_(None))
        ).all()
    done: list[tuple[str, str, str]] = []
    for task in open_tasks:
        if state.due_tasks.setdefault(task.id, day + state.task_days) > day:
            continue
        outcome = (task.outcomes or ["done"])[0]
        try:
            with state.sessions.begin() as session:
                repository.complete_task(
                    session, task.id, outcome, task.assignee_email or "csm", at=now
                )
        except ConflictError:  # cancelled meanwhile: its enrollment ended
            continue
        if task.enrollment_id:
            done.append((task.enrollment_id, task.id, outcome))
    for workflow_id, task_id, outcome in done:
        try:
            await EnrollmentHandle.get(state.client, workflow_id).task_completed(
                TaskCompletion(task_id=task_id, outcome=outcome, completed_by="simulation")
            )
        except RPCError as exc:
            # The enrollment has ended (a task it did not wait for): as live, the task is
            # done and nobody is told. Anything else is worth a warning.
            if exc.status != RPCStatusCode.NOT_FOUND:
                state.warnings.append(f"task {task_id} of {workflow_id}: not signalled ({exc})")


def _enroller(state: _Book) -> Callable[[str, str, str], Any]:
    """The ``enroll`` step's way in: the playbooks in use now, at simulated time."""

    async def enroller(playbook: str, customer_id: str, parent: str) -> str:
        plan = state.plans.get(playbook)
        if plan is None:
            return f"not enrolled in {playbook}: no such playbook"
        now = await state.now()
        with state.sessions() as session:
            if not reenroll_allowed(session, plan, customer_id, now=now):
                return f"not enrolled in {playbook}: enrolled before (reenroll: {plan.reenroll})"
        try:
            return await enroll(
                state.client,
                plan,
                customer_id,
                task_queue=state.queue,
                use_search_attributes=False,
                started_at=now,
                clock_offset_seconds=state.offset.total_seconds(),
            )
        except AlreadyEnrolled as exc:
            return str(exc)

    return enroller


def _seed_team(sessions: sessionmaker[Session], book: Book) -> None:
    members: dict[str, SimTeamMember] = {m.email.lower(): m for m in book.team}
    for customer in book.customers:
        if customer.owner and customer.owner.lower() not in members:
            members[customer.owner.lower()] = SimTeamMember(
                email=customer.owner, name=customer.owner.split("@")[0].replace(".", " ").title()
            )
    with sessions.begin() as session:
        for m in members.values():
            session.add(
                TeamMember(
                    email=m.email.lower(),
                    name=m.name,
                    manager_email=m.manager.lower() if m.manager else None,
                    roles=m.roles,
                )
            )


def _add_customer(sessions: sessionmaker[Session], customer: BookCustomer, at: datetime) -> None:
    with sessions.begin() as session:
        repository.upsert_customer(session, customer.customer_data())
        # Added at simulated time, as a feature_unused signal counts from it.
        session.execute(update(Customer).where(Customer.id == customer.id).values(created_at=at))
        for contact in customer.contacts:
            if contact.unsubscribed:
                repository.suppress(
                    session, contact.email, "unsubscribed (customer file)", source="simulation"
                )


# -- collecting the result ---------------------------------------------------------------
async def _collect(
    state: _Book, begin: datetime, horizon: datetime
) -> tuple[list[BookAction], list[BookEnrollment]]:
    actions: list[BookAction] = []
    enrollments: list[BookEnrollment] = []
    for started in state.recorder.started:
        payload = started.input
        handle = state.client.get_workflow_handle_for(
            PlaybookWorkflow.run,
            started.workflow_id,
            run_id=started.run_id,
            first_execution_run_id=started.run_id,
        )
        tz = zone(state.customers[payload.customer_id].timezone)
        description = await handle.describe()
        records: list[StepRecord]
        run = BookEnrollment(
            enrollment=started.workflow_id,
            key=payload.enrollment_key or started.workflow_id,
            customer=payload.customer_id,
            playbook=payload.plan.playbook,
            version=payload.plan.short_version,
            cycle=payload.cycle_key,
            started_at=(payload.started_at or begin).astimezone(tz),
            status="running",
        )
        if description.status == WorkflowExecutionStatus.RUNNING:
            snapshot: EnrollmentSnapshot = await EnrollmentHandle(handle).status()
            records = snapshot.records
            run.waiting = Waiting(
                step=snapshot.current_step,
                waiting_for=snapshot.waiting_for,
                until=snapshot.waiting_until.astimezone(tz) if snapshot.waiting_until else None,
            ).describe()
        else:
            try:
                result = await handle.result()
            except Exception as exc:  # a failed or terminated workflow
                run.status = str(description.status.name if description.status else "failed")
                run.outcome = "failed"
                state.warnings.append(f"{started.workflow_id}: {exc}")
                records = []
            else:
                records = result.records
                run.status = str(result.status)
                run.outcome = result.outcome
                run.ended_at = records[-1].at.astimezone(tz) if records else None
        enrollments.append(run)
        state.delivery[run.key] = payload.plan.delivery
        for record in records:
            if record.kind in ACTION_KINDS:
                actions.append(_action(run, record, begin, tz))
    actions.sort(key=lambda a: (a.at, a.customer, a.playbook))
    enrollments.sort(key=lambda e: (e.started_at, e.customer, e.playbook))
    return actions, enrollments


def _action(run: BookEnrollment, record: StepRecord, begin: datetime, tz: Any) -> BookAction:
    action = BookAction(
        at=record.at.astimezone(tz),
        day=(record.at - begin).days,
        customer=run.customer,
        playbook=run.playbook,
        version=run.version,
        enrollment=run.key,
        step=record.step,
        kind=record.kind,
        detail=record.detail,
    )
    if record.kind == "email":
        for delivery in record.data.get("deliveries", []):
            target = action.to if delivery.get("status") in SENT else action.suppressed
            target.append(delivery.get("contact", ""))
    elif record.kind == "task":
        action.assignee = record.data.get("assignee")
    return action


def check_caps(
    actions: Sequence[BookAction], book: Book, delivery: Mapping[str, DeliveryPlan | None]
) -> list[str]:
    """The emails charged to contacts' budgets (customer contacts, steps not exempt), checked
    against the caps of the policy each enrollment ran under, in each contact's zone."""
    zones: dict[str, str] = {}
    for customer in book.customers:
        for person in customer.contacts:
            zones[person.email.lower()] = person.timezone or customer.timezone
    by_caps: dict[tuple[tuple[int, int], ...], list[Send]] = defaultdict(list)
    caps: dict[tuple[tuple[int, int], ...], list[CapPlan]] = {}
    for action in actions:
        policy = delivery.get(action.enrollment)
        if action.kind != "email" or policy is None or not policy.caps:
            continue
        if policy.for_step(action.step).exempt:
            continue
        key = tuple((cap.max, cap.days) for cap in policy.caps)
        caps[key] = policy.caps
        for contact in action.to:
            if contact.lower() in zones:  # internal mail (owner, team) is not budgeted
                by_caps[key].append(Send(contact, action.at, zones[contact.lower()]))
    # Every budgeted email against every policy in force (one, unless a switch changed it).
    every = [send for sends in by_caps.values() for send in sends]
    return sorted({line for key in caps for line in cap_violations(every, caps[key])})


def summarize(
    actions: Sequence[BookAction], enrollments: Sequence[BookEnrollment], customers: int
) -> BookSummary:
    """Emails per day (customer's calendar) and per playbook; tasks per CSM per ISO week."""
    per_day: Counter[date] = Counter()
    per_playbook: Counter[str] = Counter()
    per_csm: dict[str, Counter[str]] = defaultdict(Counter)
    outcomes: dict[str, Counter[str]] = defaultdict(Counter)
    emails = tasks = 0
    for action in actions:
        if action.kind == "email" and action.to:
            emails += len(action.to)
            per_day[action.at.date()] += len(action.to)
            per_playbook[action.playbook] += len(action.to)
        elif action.kind == "task":
            tasks += 1
            year, week, _ = action.at.isocalendar()
            per_csm[action.assignee or "unassigned"][f"{year}-W{week:02d}"] += 1
    for run in enrollments:
        outcomes[run.playbook][run.outcome or "running"] += 1
    return BookSummary(
        customers=customers,
        enrollments=len(enrollments),
        emails=emails,
        tasks=tasks,
        outcomes={p: dict(c) for p, c in sorted(outcomes.items())},
        emails_per_day=dict(sorted(per_day.items())),
        emails_per_playbook=dict(sorted(per_playbook.items())),
        tasks_per_csm_week={csm: dict(sorted(c.items())) for csm, c in sorted(per_csm.items())},
    )


__all__ = [
    "BookAction",
    "BookEnrollment",
    "BookHealthChange",
    "BookResult",
    "BookSummary",
    "ProjectSwitch",
    "check_caps",
    "simulate_book",
    "summarize",
]
