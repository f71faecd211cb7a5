"""A small harness to run enrollments on the time-skipping server against a real store.

`running(...)` starts a worker with the real workflow and the real activities (bound to the
test's SQLite store and a mailer) and yields a `Harness` that starts enrollments, moves
virtual time (`until`, `until_waiting`), sends events and task completions the way the API
does (store first, then signal), and reads back the outbox, the tasks and the projection.
Every enrollment the harness started and that is still running when the block ends is
terminated, so a test never leaves timers firing into the next one.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mailer import Mailer
from activities.registry import PlaybookActivities
from engine.client.enrollment import enroll
from engine.client.sandbox import workflow_runner
from engine.language.plan import CompiledPlan
from engine.messages import (
    EnrollmentResult,
    EnrollmentSnapshot,
    EventSignal,
    StepRecord,
    TaskCompletion,
)
from engine.project import Project, load_project
from engine.store import repository
from engine.store.models import Customer, Enrollment, OutboxMessage, Task, TeamMember
from tests.helpers.paths import PLAYBOOKS
from workflows.playbook import PlaybookWorkflow

ADMIN_AND_CHAMPION = {"ada@acme.example", "carl@acme.example"}
OWNER = "csm@vendor.example"
QUERY_TIMEOUT = timedelta(seconds=10)
RETRIED_QUERY_STATUSES = {RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED}
MANAGER = "boss@vendor.example"

DEFAULT_CONTACTS: list[dict[str, Any]] = [
    {"email": "ada@acme.example", "first_name": "Ada", "last_name": "Admin", "role": "admin"},
    {"email": "carl@acme.example", "first_name": "Carl", "role": "champion"},
]


def seed_customer(
    sessions: sessionmaker[Session],
    customer_id: str = "acme",
    *,
    segment: str = "enterprise",
    timezone: str = "Europe/Berlin",
    health: int | None = 80,
    renewal: date | None = None,
    contacts: list[dict[str, Any]] | None = None,
    attributes: dict[str, Any] | None = None,
) -> None:
    """A customer with an owner (who has a manager) and, by default, two contacts."""
    contacts = contacts if contacts is not None else DEFAULT_CONTACTS
    with sessions.begin() as session:
        for email, name, manager in (
            (OWNER, "Casey Success", MANAGER),
            (MANAGER, "Morgan Manager", None),
        ):
            if session.get(TeamMember, email) is None:
                session.add(
                    TeamMember(email=email, name=name, manager_email=manager, roles=["csm"])
                )
        session.flush()
        repository.upsert_customer(
            session,
            repository.CustomerData(
                id=customer_id,
                name="Acme Corp",
                segment=segment,
                timezone=timezone,
                owner_email=OWNER,
                renewal_date=renewal,
                health_score=health,
                attributes=attributes or {},
                contacts=[repository.ContactData(**c) for c in contacts],
            ),
        )


def write_project(root: Path, playbooks: dict[str, str]) -> Project:
    """A playbook project in ``root`` with the shipped milestones and these playbooks
    (file stem -> YAML source), compiled; fails on any error."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "milestones.yaml").write_text((PLAYBOOKS / "milestones.yaml").read_text())
    for name, source in playbooks.items():
        (root / f"{name}.yaml").write_text(source)
    project = load_project(root)
    assert not project.errors, [str(d) for d in project.errors]
    return project


def local(moment: datetime, timezone: str) -> datetime:
    """``moment`` on the wall clock of ``timezone``."""
    return moment.astimezone(ZoneInfo(timezone))


def in_window(
    moment: datetime, timezone: str, days: range | tuple[int, ...], hours: tuple[int, int]
) -> bool:
    """Whether ``moment`` falls on one of ``days`` (Monday=0) within [start, end) local hours."""
    at = local(moment, timezone)
    return at.weekday() in days and hours[0] <= at.hour < hours[1]


def records(
    source: EnrollmentSnapshot | EnrollmentResult, kind: str, step: str | None = None
) -> list[StepRecord]:
    """The timeline records of one kind (and step), oldest first."""
    return [r for r in source.records if r.kind == kind and (step is None or r.step == step)]


@dataclass
class Harness:
    env: WorkflowEnvironment
    sessions: sessionmaker[Session]
    task_queue: str
    customer_id: str = "acme"
    started: list[str] = field(default_factory=list)

    async def start(
        self,
        plan: CompiledPlan,
        customer_id: str | None = None,
        cycle_key: str | None = None,
        *,
        continue_as_new_after_events: int | None = None,
    ) -> WorkflowHandle[Any, EnrollmentResult]:
        workflow_id = await enroll(
            self.env.client,
            plan,
            customer_id or self.customer_id,
            task_queue=self.task_queue,
            cycle_key=cycle_key,
            use_search_attributes=False,
            started_at=await self.now(),
            continue_as_new_after_events=continue_as_new_after_events,
        )
        self.started.append(workflow_id)
        return self.env.client.get_workflow_handle(workflow_id, result_type=EnrollmentResult)

    async def until(
        self,
        check: Callable[[], Any],
        *,
        step: timedelta = timedelta(hours=1),
        limit: timedelta = timedelta(days=400),
    ) -> Any:
        """Skip virtual time in steps until ``check()`` (sync or async) is truthy; return it.

        Each round first gives the worker a moment of real time, so activities started at
        the current virtual time finish before the clock moves on.
        """
        waited = timedelta(0)
        while True:
            await asyncio.sleep(0.05)
            value = check()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            if waited >= limit:
                raise AssertionError(f"condition not met after {limit}")
            await self.env.sleep(step)
            waited += step

    async def until_status(
        self,
        handle: WorkflowHandle[Any, Any],
        holds: Callable[[EnrollmentSnapshot], bool],
        *,
        step: timedelta,
        limit: timedelta,
    ) -> EnrollmentSnapshot:
        """Move time until the enrollment's status satisfies ``holds``; return the status."""

        async def check() -> EnrollmentSnapshot | None:
            status = await self.status(handle)
            return status if holds(status) else None

        result: EnrollmentSnapshot = await self.until(check, step=step, limit=limit)
        return result

    async def until_waiting(
        self,
        handle: WorkflowHandle[Any, Any],
        what: str,
        *,
        step: timedelta = timedelta(hours=1),
        limit: timedelta = timedelta(days=30),
    ) -> EnrollmentSnapshot:
        """Move time until the enrollment waits for something whose label contains ``what``."""
        return await self.until_status(
            handle, lambda s: bool(s.waiting_for) and what in s.waiting_for, step=step, limit=limit
        )

    async def until_step(
        self,
        handle: WorkflowHandle[Any, Any],
        step_id: str,
        *,
        step: timedelta = timedelta(hours=6),
        limit: timedelta = timedelta(days=200),
    ) -> EnrollmentSnapshot:
        """Move time until the enrollment stands at ``step_id``."""
        return await self.until_status(
            handle, lambda s: s.current_step == step_id, step=step, limit=limit
        )

    async def until_emailed(
        self,
        handle: WorkflowHandle[Any, Any],
        step_id: str,
        *,
        step: timedelta = timedelta(hours=2),
    ) -> list[OutboxMessage]:
        """Move time until the email step ``step_id`` finished; return its outbox rows."""

        async def emailed() -> bool:
            return bool(records(await self.status(handle), "email", step_id))

        await self.until(emailed, step=step)
        return self.outbox(step_id)

    async def settle(self, handle: WorkflowHandle[Any, Any]) -> EnrollmentSnapshot:
        """Let the workflow handle what it was just sent, without moving virtual time."""
        await asyncio.sleep(0.3)
        return await self.status(handle)

    async def status(self, handle: WorkflowHandle[Any, Any]) -> EnrollmentSnapshot:
        """The status query; retried when a loaded machine makes it miss its deadline.

        Each attempt gets 10 s (the client's own limit would be 30 s, and a query the test
        server leaves unanswered then surfaces as CANCELLED "Timeout expired").
        """
        for attempt in range(5):
            try:
                return await handle.query(PlaybookWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
            except RPCError as exc:
                if exc.status not in RETRIED_QUERY_STATUSES or attempt == 4:
                    raise
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def now(self) -> datetime:
        return (await self.env.get_current_time()).astimezone(UTC)

    async def event(
        self,
        handle: WorkflowHandle[Any, Any],
        name: str,
        properties: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        customer_id: str | None = None,
        signal: bool = True,
    ) -> EventSignal:
        """Store the event (as the API does) and, unless ``signal=False``, signal it."""
        event = EventSignal(
            id=event_id or uuid.uuid4().hex,
            name=name,
            at=await self.now(),
            properties=properties or {},
        )
        with self.sessions.begin() as session:
            repository.record_event(
                session,
                event.id,
                customer_id or self.customer_id,
                name,
                event.at,
                event.properties,
            )
        if signal:
            await handle.signal(PlaybookWorkflow.event, event)
        return event

    async def complete(self, handle: WorkflowHandle[Any, Any], task_id: str, outcome: str) -> None:
        """Complete a task in the store and tell the enrollment, as the task inbox does."""
        with self.sessions.begin() as session:
            repository.complete_task(session, task_id, outcome, OWNER)
        await handle.signal(
            PlaybookWorkflow.task_completed,
            TaskCompletion(task_id=task_id, outcome=outcome, completed_by=OWNER),
        )

    async def result(
        self, handle: WorkflowHandle[Any, EnrollmentResult], *, timeout: float = 30.0
    ) -> EnrollmentResult:
        """Wait for the end, letting the time-skipping server skip every timer meanwhile.

        (`enroll` starts the workflow itself, so the handle is a plain one and does not
        unlock time skipping on its own the way the test environment's handles do.)
        ``timeout`` is real seconds: a playbook that loops forever fails the test instead of
        spinning through virtual years. Note that once a run is over the test server may leap
        its clock years ahead (stale execution-timeout timers), so tests take dates relative
        to `now()`, never absolute ones.
        """
        async with self.env.time_skipping_unlocked():  # type: ignore[attr-defined]
            return await asyncio.wait_for(handle.result(), timeout)

    def outbox(self, step: str | None = None) -> list[OutboxMessage]:
        with self.sessions() as session:
            query = select(OutboxMessage).order_by(OutboxMessage.id)
            if step is not None:
                query = query.where(OutboxMessage.step_id == step)
            return list(session.scalars(query))

    def tasks(self, step: str | None = None) -> list[Task]:
        with self.sessions() as session:
            query = select(Task).order_by(Task.created_at)
            if step is not None:
                query = query.where(Task.step_id == step)
            return list(session.scalars(query))

    def task(self, task_id: str) -> Task:
        with self.sessions() as session:
            task = repository.get_task(session, task_id)
            assert task is not None
            return task

    def enrollment(self, workflow_id: str) -> Enrollment | None:
        """The newest stored run of ``workflow_id``."""
        with self.sessions() as session:
            return repository.latest_enrollment(session, workflow_id)

    def stored_end(self, workflow_id: str) -> tuple[str, str | None]:
        """(status, outcome) of the enrollment as the store's projection has it."""
        enrollment = self.enrollment(workflow_id)
        assert enrollment is not None, f"no stored enrollment {workflow_id}"
        return enrollment.status, enrollment.outcome

    def customer(self, customer_id: str | None = None) -> Customer:
        with self.sessions() as session:
            customer = session.get(Customer, customer_id or self.customer_id)
            assert customer is not None
            return customer

    async def stop_leftovers(self) -> None:
        """Terminate the enrollments this harness started that are still running.

        Each is first given a moment to come to rest (no workflow task or activity in
        flight): the time-skipping server holds its clock while one is outstanding, and
        terminating the workflow then leaves the clock held for good, so every later
        `env.sleep` on that server would crawl in real time. (Its describe() does not
        report pending tasks, hence the look at the history.)
        """
        for workflow_id in self.started:
            handle = self.env.client.get_workflow_handle(workflow_id)
            for _ in range(100):
                if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
                    break
                if _at_rest(await handle.fetch_history()):
                    try:
                        await handle.terminate(reason="test finished")
                    except RPCError as exc:  # it ended between the look and the terminate
                        if exc.status != RPCStatusCode.NOT_FOUND:
                            raise
                    break
                await asyncio.sleep(0.05)


def _at_rest(history: WorkflowHistory) -> bool:
    """No workflow task and no activity outstanding at the end of ``history``."""
    events = history.events
    if events and events[-1].event_type in (
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ):
        return False
    scheduled = {
        e.event_id for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    }
    closed = set()
    for e in events:
        for attributes in (
            e.activity_task_completed_event_attributes,
            e.activity_task_failed_event_attributes,
            e.activity_task_timed_out_event_attributes,
            e.activity_task_canceled_event_attributes,
        ):
            if attributes.scheduled_event_id:
                closed.add(attributes.scheduled_event_id)
    return scheduled <= closed


@asynccontextmanager
async def playbook_worker(
    env: WorkflowEnvironment,
    task_queue: str,
    activities: PlaybookActivities,
    max_workers: int = 8,
) -> AsyncIterator[Worker]:
    """A worker running the real workflow and ``activities`` (the sync ones in threads)."""
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[PlaybookWorkflow],
            activities=activities.all(),
            activity_executor=pool,
            workflow_runner=workflow_runner(),
        ) as worker:
            yield worker


@asynccontextmanager
async def running(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    mailer: Mailer | None = None,
    customer_id: str = "acme",
) -> AsyncIterator[Harness]:
    async with playbook_worker(env, task_queue, PlaybookActivities(sessions, mailer)):
        harness = Harness(env, sessions, task_queue, customer_id)
        try:
            yield harness
        finally:
            await harness.stop_leftovers()
