"""A small harness to run enrollments on the time-skipping server against a real store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.mailer import Mailer
from activities.playbook import PlaybookActivities
from engine.enrollment import enroll
from engine.plan import CompiledPlan
from engine.store import repository
from engine.store.models import OutboxMessage, Task, TeamMember
from workflows.models import EnrollmentResult, EnrollmentStatus, EventSignal, TaskCompletion
from workflows.playbook import PlaybookWorkflow


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
    """A customer with an owner (who has a manager) and two contacts."""
    contacts = (
        contacts
        if contacts is not None
        else [
            {
                "email": "ada@acme.example",
                "first_name": "Ada",
                "last_name": "Admin",
                "role": "admin",
            },
            {"email": "carl@acme.example", "first_name": "Carl", "role": "champion"},
        ]
    )
    with sessions.begin() as session:
        for email, name, manager in (
            ("csm@vendor.example", "Casey Success", "boss@vendor.example"),
            ("boss@vendor.example", "Morgan Manager", None),
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
                owner_email="csm@vendor.example",
                renewal_date=renewal,
                health_score=health,
                attributes=attributes or {},
                contacts=[repository.ContactData(**c) for c in contacts],
            ),
        )


@dataclass
class Harness:
    env: WorkflowEnvironment
    sessions: sessionmaker[Session]
    task_queue: str

    async def start(
        self, plan: CompiledPlan, customer_id: str = "acme", cycle_key: str | None = None
    ) -> WorkflowHandle[Any, Any]:
        workflow_id = await enroll(
            self.env.client,
            plan,
            customer_id,
            task_queue=self.task_queue,
            cycle_key=cycle_key,
            use_search_attributes=False,
            started_at=await self.now(),
        )
        return self.env.client.get_workflow_handle(workflow_id, result_type=EnrollmentResult)

    async def until(
        self,
        check: Callable[[], Any],
        *,
        step: timedelta = timedelta(hours=1),
        limit: timedelta = timedelta(days=400),
    ) -> Any:
        """Skip time in steps until ``check()`` returns something truthy; return it."""
        waited = timedelta(0)
        while True:
            await asyncio.sleep(0.05)
            value = check()
            if value:
                return value
            if waited >= limit:
                raise AssertionError(f"condition not met after {limit}")
            await self.env.sleep(step)
            waited += step

    async def status(self, handle: WorkflowHandle[Any, Any]) -> EnrollmentStatus:
        return await handle.query("status", result_type=EnrollmentStatus)

    async def now(self) -> datetime:
        return (await self.env.get_current_time()).astimezone(UTC)

    async def event(
        self,
        handle: WorkflowHandle[Any, Any],
        name: str,
        properties: dict[str, Any] | None = None,
        customer_id: str = "acme",
    ) -> None:
        """Store the event (as the API does) and signal it to the enrollment."""
        event = EventSignal(
            id=uuid.uuid4().hex, name=name, at=await self.now(), properties=properties or {}
        )
        with self.sessions.begin() as session:
            repository.record_event(
                session, event.id, customer_id, name, event.at, event.properties
            )
        await handle.signal("event", event)

    async def complete(self, handle: WorkflowHandle[Any, Any], task_id: str, outcome: str) -> None:
        with self.sessions.begin() as session:
            repository.complete_task(session, task_id, outcome, "csm@vendor.example")
        await handle.signal(
            "task_completed",
            TaskCompletion(task_id=task_id, outcome=outcome, completed_by="csm@vendor.example"),
        )

    async def result(self, handle: WorkflowHandle[Any, Any]) -> EnrollmentResult:
        return await handle.result()

    def outbox(self) -> list[OutboxMessage]:
        with self.sessions() as session:
            return list(session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))

    def tasks(self) -> list[Task]:
        with self.sessions() as session:
            return list(session.scalars(select(Task).order_by(Task.created_at)))


@asynccontextmanager
async def running(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    mailer: Mailer | None = None,
) -> AsyncIterator[Harness]:
    activities = PlaybookActivities(sessions, mailer)
    with ThreadPoolExecutor(max_workers=8) as pool:
        async with Worker(
            env.client,
            task_queue=task_queue,
            workflows=[PlaybookWorkflow],
            activities=activities.all(),
            activity_executor=pool,
        ):
            yield Harness(env, sessions, task_queue)
