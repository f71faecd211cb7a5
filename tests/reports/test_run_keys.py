"""An email's and a task's playbook version come from the run that made them (its run key),
on SQLite and PostgreSQL; migration 0014 gives older rows the run they were made during."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import MetaData, insert, select
from sqlalchemy.orm import Session

from engine.services import reports
from engine.services.reports import ReportFilters
from engine.statuses import EnrollmentStatus, OutboxStatus
from engine.store import repository
from engine.store.db import engine_for, migrate, session_factory
from engine.store.models import Customer, OutboxMessage, Task
from tests.helpers.databases import BACKENDS
from tests.helpers.insight import NOW


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def seed_two_runs(session: Session) -> None:
    """Customer r1 enrolled twice under one workflow ID: run r1-a (v1, 60 to 30 days ago),
    then r1-b (v2, from 30 days ago). Each sent one email and created one task, all at the
    moment r1-a ended and r1-b started: only the run key tells which run made which."""
    session.add(Customer(id="r1", name="Customer R1", segment="runs"))
    for key, version, started, ended in (("r1-a", "v1", 60, 30), ("r1-b", "v2", 30, None)):
        repository.upsert_enrollment(
            session, workflow_id="wf-r1", enrollment_key=key, playbook_id="rk",
            version=version, customer_id="r1", started_at=_ago(started), new=True,
            status=EnrollmentStatus.EXITED if ended else EnrollmentStatus.RUNNING,
            ended_at=_ago(ended) if ended else None,
        )  # fmt: skip
        session.add_all(
            [
                OutboxMessage(
                    idempotency_key=f"mail-{key}", enrollment_id="wf-r1", run_key=key,
                    playbook_id="rk", step_id="welcome", customer_id="r1",
                    contact_email=f"{key}@r1.example", subject="Welcome",
                    status=OutboxStatus.SENT, created_at=_ago(30),
                ),
                Task(
                    id=f"task-{key}", idempotency_key=f"task-{key}", enrollment_id="wf-r1",
                    run_key=key, playbook_id="rk", customer_id="r1", title="Call",
                    assignee_email=f"{key}@cs.example", created_at=_ago(30),
                ),
            ]
        )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_emails_and_a_tasks_version_is_their_runs(db_url: str) -> None:
    with session_factory(db_url).begin() as session:
        seed_two_runs(session)
    with session_factory(db_url)() as session:
        email = reports.build(session, "email", ReportFilters(segment="runs"), NOW)
        rows = [(r["version"].value, r["recipients"].value) for r in email.tables[0].rows]
        assert rows == [("v1", 1), ("v2", 1)]
        for version, assignee in (("v1", "r1-a@cs.example"), ("v2", "r1-b@cs.example")):
            filters = ReportFilters(segment="runs", version=version)
            tasks = reports.build(session, "tasks", filters, NOW)
            csm = next(t for t in tasks.tables if t.key == "csm")
            assert [(r["group"].value, r["created"].value) for r in csm.rows] == [(assignee, 1)]
            cell = f"email|rk|{version}|welcome|(none)|recipients"
            _, behind = reports.customers_behind(session, "email", filters, cell, NOW)
            assert [c.id for c in behind] == ["r1"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0015_gives_older_rows_the_run_they_were_made_during(
    empty_db_url: str,
) -> None:
    migrate(empty_db_url, "0014_health_signals")
    tables = MetaData()
    tables.reflect(engine_for(empty_db_url), only=["enrollments", "outbox", "tasks"])
    enrollments, outbox, tasks = (tables.tables[n] for n in ("enrollments", "outbox", "tasks"))
    runs = [("wf-1", "v1", 60, 30), ("wf-1#2", "v2", 29, None)]  # the second run's own key
    with engine_for(empty_db_url).begin() as connection:
        for key, version, started, ended in runs:
            connection.execute(
                insert(enrollments).values(
                    enrollment_key=key, workflow_id="wf-1", playbook_id="rk", version=version,
                    customer_id="x", status="running", started_at=_ago(started),
                    ended_at=_ago(ended) if ended else None, updated_at=NOW,
                )
            )  # fmt: skip
        for name, days, workflow in (("old", 40, "wf-1"), ("new", 10, "wf-1"), ("none", 5, None)):
            connection.execute(
                insert(outbox).values(
                    idempotency_key=name, enrollment_id=workflow, contact_email="a@x.example",
                    subject="s", headers={}, status="sent", attempts=0,
                    created_at=_ago(days), updated_at=_ago(days),
                )
            )  # fmt: skip
            connection.execute(
                insert(tasks).values(
                    id=name, idempotency_key=name, enrollment_id=workflow, title="t",
                    priority="normal", outcomes=[], status="open", created_at=_ago(days),
                )
            )  # fmt: skip
    migrate(empty_db_url)
    with session_factory(empty_db_url)() as session:
        keys = dict(
            session.execute(select(OutboxMessage.idempotency_key, OutboxMessage.run_key)).all()
        )
        assert keys == {"old": "wf-1", "new": "wf-1#2", "none": None}
        assert dict(session.execute(select(Task.id, Task.run_key)).all()) == keys
