"""Shared pieces of the reliability tests: sizes, playbooks, seeding, waiting, and the
duplicate audit."""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.mailer import Mailer
from activities.registry import PlaybookActivities
from engine.client.enrollment import enroll
from engine.language.plan import CompiledPlan
from engine.messages import EnrollmentResult, EnrollmentSnapshot
from engine.store.models import OutboxMessage, Task
from tests.helpers.harness import playbook_worker, seed_customer
from tests.helpers.polling import eventually
from workflows.playbook import PlaybookWorkflow

# An environment variable, not a pytest option: options can only be registered by the root
# conftest.
LONG = os.environ.get("RELIABILITY_LONG", "") not in ("", "0")
# The user property under which a reliability test keeps what it measured (`figures`).
FIGURES_PROPERTY = "reliability_figures"


def sized(default: int, long: int) -> int:
    """``long`` under RELIABILITY_LONG=1, else ``default``."""
    return long if LONG else default


# email -> task -> short wait -> email, seconds-scale so a run takes seconds.
SHORT_PLAYBOOK = """\
playbook: short
name: Short playbook for fault injection
trigger: {manual: true}
steps:
  - id: hello
    email:
      subject: "Hello {{ contact.first_name }}"
      body: >
        <p>Hi {{ contact.first_name }}, welcome to {{ customer.name }}.</p>
        <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
      send_window: anytime
  - id: call
    task:
      title: "Call {{ customer.name }}"
  - id: pause
    wait: {for: 3s}
  - id: follow_up
    email:
      subject: "How is it going, {{ contact.first_name }}?"
      body: >
        <p>Hi again {{ contact.first_name }}.</p>
        <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
      send_window: anytime
  - id: done
    end: {outcome: finished}
"""
SHORT_EMAIL_STEPS = ("hello", "follow_up")
SHORT_TASK_STEPS = ("call",)


def contacts_for(customer_id: str, count: int = 2) -> list[dict[str, Any]]:
    roles = ["admin", "champion", "user"]
    return [
        {
            "email": f"p{i}.{customer_id}@example.com",
            "first_name": f"P{i}",
            "role": roles[i % len(roles)],
        }
        for i in range(count)
    ]


def seed_customers(
    sessions: sessionmaker[Session], count: int, *, contacts: int = 2, prefix: str = "c"
) -> list[str]:
    run = uuid.uuid4().hex[:6]
    ids = [f"{prefix}{run}-{i:04d}" for i in range(count)]
    for customer_id in ids:
        seed_customer(sessions, customer_id, contacts=contacts_for(customer_id, contacts))
    return ids


async def start_all(
    client: Client, plan: CompiledPlan, customers: list[str], task_queue: str
) -> list[WorkflowHandle[Any, EnrollmentResult]]:
    async def one(customer_id: str) -> WorkflowHandle[Any, EnrollmentResult]:
        workflow_id = await enroll(
            client,
            plan,
            customer_id,
            task_queue=task_queue,
            use_search_attributes=False,
            started_at=datetime.now(UTC),
        )
        return client.get_workflow_handle(workflow_id, result_type=EnrollmentResult)

    return list(await asyncio.gather(*(one(c) for c in customers)))


async def results(
    handles: list[WorkflowHandle[Any, EnrollmentResult]], timeout: float
) -> list[EnrollmentResult]:
    """Every enrollment's result; fails naming the ones that did not finish in time."""
    tasks = {h.id: asyncio.ensure_future(h.result()) for h in handles}
    _done, pending = await asyncio.wait(tasks.values(), timeout=timeout)
    for task in pending:
        task.cancel()
    unfinished = [wid for wid, task in tasks.items() if task in pending]
    assert not unfinished, f"{len(unfinished)} enrollment(s) did not finish: {unfinished[:5]}"
    return [tasks[h.id].result() for h in handles]


def seeded_random() -> tuple[random.Random, int]:
    """A RNG for kill timings; RELIABILITY_SEED replays a run's moments."""
    seed = int(os.environ.get("RELIABILITY_SEED") or random.SystemRandom().randrange(1 << 30))
    return random.Random(seed), seed


@dataclass
class Audit:
    """What the stand-in received against what the outbox and task table say."""

    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    outbox: dict[tuple[str, str, str], OutboxMessage] = field(default_factory=dict)
    tasks: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def duplicate_emails(self) -> dict[tuple[str, str, str], int]:
        return {key: n for key, n in self.requests.items() if n > 1}

    @property
    def duplicate_tasks(self) -> dict[tuple[str, str], int]:
        return {key: n for key, n in self.tasks.items() if n > 1}

    def statuses(self) -> Counter[str]:
        return Counter(row.status for row in self.outbox.values())

    @property
    def unconfirmed_not_received(self) -> int:
        """Unconfirmed rows whose request never reached the provider (recorded, not sent)."""
        return sum(
            1
            for key, row in self.outbox.items()
            if row.status == "unconfirmed" and self.requests[key] == 0
        )


def audit(standin: Any, sessions: sessionmaker[Session]) -> Audit:
    result = Audit()
    for mail in standin.requests:
        for personalization in mail.personalizations:
            args = personalization.get("custom_args") or {}
            for to in personalization.get("to", []):
                key = (args.get("enrollment_id"), args.get("step_id"), to["email"].lower())
                result.requests[key] += 1
    with sessions() as session:
        for row in session.scalars(select(OutboxMessage)):
            result.outbox[(row.enrollment_id, row.step_id, row.contact_email.lower())] = row
        for task in session.scalars(select(Task)):
            result.tasks[(task.enrollment_id, task.step_id)] += 1
    return result


def assert_exactly_once(
    result: Audit, enrollment_ids: list[str], contacts: dict[str, list[str]]
) -> None:
    """Every (enrollment, email step, contact) has one outbox row, and the provider got at
    most one request for it: exactly one when the row says 'sent' (with that message id);
    'unconfirmed' (with a reason) only where a crash left the outcome unknown."""
    assert not result.duplicate_emails, f"duplicate emails: {result.duplicate_emails}"
    assert not result.duplicate_tasks, f"duplicate tasks: {result.duplicate_tasks}"
    for enrollment_id in enrollment_ids:
        customer = enrollment_id.split("/")[1]
        for step in SHORT_EMAIL_STEPS:
            for contact in contacts[customer]:
                key = (enrollment_id, step, contact)
                row = result.outbox.get(key)
                assert row is not None, f"no outbox row for {key}"
                assert row.status in ("sent", "unconfirmed"), (key, row.status, row.reason)
                if row.status == "sent":
                    assert result.requests[key] == 1, (key, result.requests[key])
                else:
                    assert row.reason, key
        for step in SHORT_TASK_STEPS:
            assert result.tasks[(enrollment_id, step)] == 1, (enrollment_id, step)


@asynccontextmanager
async def inprocess_worker(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    mailer: Mailer | None = None,
) -> AsyncIterator[PlaybookActivities]:
    """The real workflow and activities in this process (for faults that need no kill)."""
    activities = PlaybookActivities(sessions, mailer, signing_secret="reliability-secret")
    async with playbook_worker(env, task_queue, activities, max_workers=16):
        yield activities


async def waiting_for(handle: WorkflowHandle[Any, Any], what: str, seconds: float = 30) -> Any:
    async def check() -> EnrollmentSnapshot | None:
        status = await handle.query(PlaybookWorkflow.status)
        return status if status.waiting_for and what in status.waiting_for else None

    return await eventually(check, seconds, what=f"{handle.id} waiting for {what}")


def outbox_row(
    session: Session, enrollment_id: str, step_id: str, contact: str
) -> OutboxMessage | None:
    """The outbox row of one step's email to one contact (its idempotency key also carries
    the enrollment's own key, so tests find it by what it is for)."""
    return session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.enrollment_id == enrollment_id,
            OutboxMessage.step_id == step_id,
            OutboxMessage.contact_email == contact.lower(),
        )
    ).one_or_none()
