"""A burst of enrollments on SQLite (issue 20): all start at once, as an import or a
schedule starts them, and every one completes and is recorded exactly once.

The production worker (`worker.build_worker`) on the time-skipping server and a SQLite file:
on SQLite it runs at most `worker_sqlite_max_concurrent_activities` activities at once, so
the burst queues in Temporal's task queue (backpressure) instead of piling onto SQLite's
single writer, and a writer that still meets the lock waits (`SQLITE_BUSY_TIMEOUT_MS`).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, insert, select
from temporalio.testing import WorkflowEnvironment

from engine.client.enrollment import enroll
from engine.messages import EnrollmentResult
from engine.settings import load_settings
from engine.statuses import EnrollmentStatus
from engine.store.db import migrate, session_factory
from engine.store.models import Customer, Enrollment
from tests.helpers.harness import write_project

BURST = 200
PLAYBOOK = """\
playbook: burst
name: Burst
trigger:
  manual: true
steps:
  - id: done
    end: {outcome: done}
"""


async def test_a_burst_of_enrollments_on_sqlite_completes_with_none_lost(
    temporal_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    from worker import build_activities, build_worker

    settings = load_settings(
        playbook_home=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'burst.db'}",
        temporal_task_queue=task_queue,
        signing_secret="burst-test-signing-secret-of-32-bytes-or-more",
        worker_max_concurrent_activities=100,
    )
    assert settings.activity_slots == settings.worker_sqlite_max_concurrent_activities < 100
    migrate(settings.database_url)
    sessions = session_factory(settings.database_url)
    now = datetime.now(UTC)
    with sessions.begin() as session:
        session.execute(
            insert(Customer),
            [
                {"id": f"b-{n:04d}", "name": f"Customer {n}", "timezone": "UTC",
                 "attributes": {}, "tags": [], "created_at": now, "updated_at": now}
                for n in range(BURST)
            ],
        )  # fmt: skip
    plan = write_project(tmp_path / "project", {"burst": PLAYBOOK}).plan("burst")
    client = temporal_env.client
    with ThreadPoolExecutor(max_workers=settings.activity_slots) as pool:
        worker = build_worker(client, settings, build_activities(settings, client), pool)
        async with worker:
            ids = await asyncio.gather(
                *(
                    enroll(
                        client, plan, f"b-{n:04d}", task_queue=task_queue,
                        use_search_attributes=False,
                    )
                    for n in range(BURST)
                )
            )  # fmt: skip
            results = await asyncio.gather(
                *(client.get_workflow_handle(i, result_type=EnrollmentResult).result() for i in ids)
            )
    assert len(set(ids)) == BURST
    assert {r.outcome for r in results} == {"done"}
    with sessions() as session:
        rows = session.execute(
            select(Enrollment.status, func.count(Enrollment.customer_id.distinct()))
            .where(Enrollment.playbook_id == "burst")
            .group_by(Enrollment.status)
        ).all()
    assert rows == [(EnrollmentStatus.COMPLETED, BURST)]
