"""Faults 1 and 2: the worker process is SIGKILLed and restarted.

1. At random moments while enrollments run (email -> task -> 3 s wait -> email): every
   enrollment completes, the SendGrid stand-in receives at most one request per
   (enrollment, step, contact) (exactly one for every row the outbox says was sent) and the
   task table holds one task per (enrollment, step).
2. In the window after SendGrid accepted an email and before the activity completed: still
   exactly one request; the outbox row is 'unconfirmed' with the reason; the enrollment goes on.
"""

from __future__ import annotations

import asyncio
import time

from tests.helpers.harness import write_project
from tests.helpers.polling import eventually
from tests.helpers.reliability import (
    LONG,
    SHORT_PLAYBOOK,
    assert_exactly_once,
    audit,
    contacts_for,
    outbox_row,
    results,
    seed_customers,
    seeded_random,
    sized,
    start_all,
)
from tests.helpers.temporal import target_of

ENROLLMENTS = sized(40, 300)
KILLS = sized(6, 20)


async def test_worker_sigkilled_at_random_moments_loses_and_duplicates_nothing(
    dev_server, sessions, db_url, sendgrid, worker_process, task_queue, tmp_path, figures
):
    plan = write_project(tmp_path / "project", {"short": SHORT_PLAYBOOK}).plan("short")
    customers = seed_customers(sessions, ENROLLMENTS)
    worker = worker_process(
        temporal_address=target_of(dev_server),
        task_queue=task_queue,
        database_url=db_url,
        sendgrid=sendgrid,
    )
    rng, seed = seeded_random()
    figures.update(seed=seed, enrollments=ENROLLMENTS)
    started_at = time.monotonic()

    # Enrollments start in waves, one wave per worker life, so kills land on enrollments at
    # every stage: sending, creating tasks, waiting, and between steps.
    waves = [customers[i::KILLS] for i in range(KILLS)]
    handles = []
    worker.start()
    for wave in waves:
        handles += await start_all(dev_server.client, plan, wave, task_queue)
        await asyncio.sleep(rng.uniform(1.5, 5.0))
        worker.kill()
        await asyncio.sleep(rng.uniform(0.0, 1.0))
        worker.start()
    assert worker.kills == KILLS

    try:
        outcomes = await results(handles, timeout=240 if LONG else 150)
    except AssertionError:
        print(worker.tail())
        raise
    assert {r.outcome for r in outcomes} == {"finished"}

    found = audit(sendgrid, sessions)
    contacts = {c: [p["email"] for p in contacts_for(c)] for c in customers}
    assert_exactly_once(found, [h.id for h in handles], contacts)
    figures.update(
        kills_survived=worker.kills,
        completed=len(outcomes),
        duplicate_emails=len(found.duplicate_emails),
        duplicate_tasks=len(found.duplicate_tasks),
        emails_sent=found.statuses().get("sent", 0),
        emails_unconfirmed=found.statuses().get("unconfirmed", 0),
        unconfirmed_never_reached_provider=found.unconfirmed_not_received,
        seconds=round(time.monotonic() - started_at, 1),
    )


async def test_kill_after_the_provider_accepted_sends_once_and_records_unconfirmed(
    dev_server, sessions, db_url, sendgrid, worker_process, task_queue, tmp_path, figures
):
    plan = write_project(tmp_path / "project", {"short": SHORT_PLAYBOOK}).plan("short")
    [customer] = seed_customers(sessions, 1, contacts=1)
    [contact] = [p["email"] for p in contacts_for(customer, 1)]
    marker = tmp_path / "sent.marker"
    worker = worker_process(
        temporal_address=target_of(dev_server),
        task_queue=task_queue,
        database_url=db_url,
        sendgrid=sendgrid,
    )
    worker.start(RELIABILITY_HOLD_AFTER_SEND="120", RELIABILITY_SENT_MARKER=str(marker))
    [handle] = await start_all(dev_server.client, plan, [customer], task_queue)

    def sent() -> bool:
        assert worker.alive, worker.tail()
        return marker.is_file() and bool(marker.read_text().strip())

    await eventually(sent, 30, what="the provider's acceptance", context=worker.tail)
    # SendGrid answered 202 and the worker holds the answer: the activity has not completed.
    assert len(sendgrid.requests) == 1
    with sessions() as session:
        row = outbox_row(session, handle.id, "hello", contact)
        assert row is not None and row.status == "sending"
    worker.kill()
    worker.start()  # a normal worker this time

    [result] = await results([handle], timeout=90)
    assert result.outcome == "finished"
    hello = [m for m in sendgrid.requests if m.has_custom_arg("step_id", "hello")]
    assert len(hello) == 1, "the email accepted before the crash was sent again"
    with sessions() as session:
        row = outbox_row(session, handle.id, "hello", contact)
        assert row is not None
        assert row.status == "unconfirmed"
        assert "not sent again" in (row.reason or "")
    follow_up = [m for m in sendgrid.requests if m.has_custom_arg("step_id", "follow_up")]
    assert len(follow_up) == 1
    figures.update(kills_survived=1, requests_for_the_step=len(hello), status=row.status)
