"""Two worker processes on one task queue (issue 20), on SQLite and on PostgreSQL.

Both production workers (tests/reliability/worker_main.py) poll the same queue against the
same store while a burst of enrollments (email -> task -> 3 s wait -> email) starts at once:
each enrollment completes, each email reaches the SendGrid stand-in once, each task is made
once, and both workers took part. The figure (enrollments completed per second) goes to
bench/RESULTS.md. PostgreSQL needs DATABASE_URL_POSTGRES (`eval "$(.ci/postgres.sh)"`).
"""

from __future__ import annotations

import time

import pytest

from tests.helpers.databases import BACKENDS
from tests.helpers.harness import write_project
from tests.helpers.reliability import (
    SHORT_PLAYBOOK,
    assert_exactly_once,
    audit,
    contacts_for,
    results,
    seed_customers,
    sized,
    start_all,
)
from tests.helpers.temporal import target_of

ENROLLMENTS = sized(20, 300)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_workers_on_one_queue_send_each_email_and_make_each_task_once(
    dev_server, sessions, db_url, sendgrid, worker_process, task_queue, tmp_path, figures, backend
):
    plan = write_project(tmp_path / "project", {"short": SHORT_PLAYBOOK}).plan("short")
    customers = seed_customers(sessions, ENROLLMENTS)
    workers = [
        worker_process(
            temporal_address=target_of(dev_server),
            task_queue=task_queue,
            database_url=db_url,
            sendgrid=sendgrid,
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    began = time.monotonic()
    handles = await start_all(dev_server.client, plan, customers, task_queue)
    try:
        outcomes = await results(handles, timeout=120 + 2 * ENROLLMENTS)
    except AssertionError:
        print("\n".join(w.tail() for w in workers))
        raise
    seconds = time.monotonic() - began
    assert {o.outcome for o in outcomes} == {"finished"}
    assert all(w.alive for w in workers), "a worker died"
    contacts = {c: [x["email"] for x in contacts_for(c)] for c in customers}
    assert_exactly_once(audit(sendgrid, sessions), [h.id for h in handles], contacts)
    identities = set()
    for handle in handles:
        async for event in handle.fetch_history_events():
            if event.HasField("activity_task_started_event_attributes"):
                identities.add(event.activity_task_started_event_attributes.identity)
    assert len(identities) == 2, f"both workers should run activities: {identities}"
    figures.update(
        backend=backend,
        workers=2,
        enrollments=ENROLLMENTS,
        seconds=round(seconds, 1),
        enrollments_per_second=round(ENROLLMENTS / seconds, 2),
    )
