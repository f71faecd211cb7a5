"""The shipped onboarding playbook on the harness: the waits its tests stop at and the way
there, shared by tests/workflows/test_onboarding.py and tests/workflows/test_signals.py.

The `onboarding` fixture (tests/workflows/conftest.py) binds `run_onboarding` to the test's
server, store, task queue and customer: ``async with onboarding(segment="smb") as (h, handle)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from engine.messages import EnrollmentResult, EnrollmentSnapshot
from engine.project import Project
from engine.store.models import Task
from tests.helpers.harness import Harness, running, seed_customer

KICKOFF = "task 'Kickoff call with Acme Corp'"
AWAIT_INTEGRATION = "milestone integration_connected"
AWAIT_TEAM = "milestone team_invited"

Handle = WorkflowHandle[Any, EnrollmentResult]
Onboarding = Callable[..., AbstractAsyncContextManager[tuple[Harness, Handle]]]


@asynccontextmanager
async def run_onboarding(
    env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    project: Project,
    customer_id: str,
    **customer: Any,
) -> AsyncIterator[tuple[Harness, Handle]]:
    """Seed the customer (``customer`` goes to `seed_customer`: segment, timezone...), run
    a worker and enroll the customer in onboarding; yield the harness and the handle."""
    seed_customer(sessions, customer_id, **customer)
    async with running(env, sessions, task_queue, customer_id=customer_id) as h:
        yield h, await h.start(project.plan("onboarding"))


async def kickoff_task(h: Harness) -> Task:
    """The kickoff task, once the enrollment has created it (enterprise customers only)."""
    [kickoff] = await h.until(lambda: h.tasks("kickoff"))
    return kickoff


async def hold_kickoff(h: Harness, handle: Handle) -> EnrollmentSnapshot:
    """Complete the kickoff as held and move on to the wait for the integration."""
    kickoff = await kickoff_task(h)
    await h.complete(handle, kickoff.id, "held")
    return await h.until_waiting(handle, AWAIT_INTEGRATION)
