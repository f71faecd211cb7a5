"""Fault 4: PostgreSQL stops for 10 s (30 s with RELIABILITY_LONG=1) in the middle of a run.

Needs DATABASE_URL_POSTGRES and the cluster `.ci/postgres.sh` starts (data directory
/tmp/playbook-postgres-<port>, run as the OS user postgres), which the test stops and starts
with pg_ctl. Activities and local activities fail while it is down and are retried; once it
is back every enrollment completes with nothing lost or sent twice.
"""

from __future__ import annotations

import asyncio
import glob
import os
import subprocess
import time
from pathlib import Path

import pytest

from engine.store.db import (
    dispose_engines,
    migrate,
    resolve_url,
    session_factory,
    throwaway_database,
)
from tests.helpers.harness import write_project
from tests.helpers.polling import eventually
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
from workflows.playbook import PlaybookWorkflow

OUTAGE_SECONDS = sized(10, 30)
ENROLLMENTS = sized(12, 60)


def _cluster() -> tuple[str, Path, Path]:
    base = os.environ.get("DATABASE_URL_POSTGRES")
    if not base:
        pytest.skip('DATABASE_URL_POSTGRES is not set; run `eval "$(.ci/postgres.sh)"`')
    port = resolve_url(base).port or 5432
    data = Path(os.environ.get("TMPDIR", "/tmp")) / f"playbook-postgres-{port}"
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    if not (data / "PG_VERSION").is_file() or not bindirs or os.geteuid() != 0:
        pytest.skip(f"needs the .ci/postgres.sh cluster in {data}, run as root")
    return base, data, Path(bindirs[-1])


def _pg_ctl(bindir: Path, data: Path, port: int, action: str) -> None:
    command = [str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    if action == "stop":
        command += ["-m", "fast", "stop"]
    else:
        options = f"-p {port} -c listen_addresses=127.0.0.1 -k {data} -c fsync=off"
        command += ["-l", str(data / "server.log"), "-o", options, "start"]
    subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True)


@pytest.fixture
def postgres_url():
    base, data, bindir = _cluster()
    with throwaway_database(base, "reliability") as url:
        migrate(url)
        yield url, data, bindir, resolve_url(base).port or 5432


async def test_postgres_outage_loses_and_duplicates_nothing(
    dev_server, postgres_url, sendgrid, worker_process, task_queue, tmp_path, figures
):
    url, data, bindir, port = postgres_url
    sessions = session_factory(url)
    plan = write_project(tmp_path / "project", {"short": SHORT_PLAYBOOK}).plan("short")
    customers = seed_customers(sessions, ENROLLMENTS)
    worker = worker_process(
        temporal_address=target_of(dev_server),
        task_queue=task_queue,
        database_url=url,
        sendgrid=sendgrid,
    )
    worker.start()
    handles = await start_all(dev_server.client, plan, customers, task_queue)
    # Mid-run: the first emails are out, tasks and waits under way. (Wait for the worker to be
    # up first: a worker *starting* while the database is down exits, for its supervisor to
    # restart it; this test is about a running worker.)
    await eventually(lambda: len(sendgrid.requests) >= ENROLLMENTS, 60, what="first emails sent")
    await asyncio.sleep(0.5)
    stopped = time.monotonic()
    _pg_ctl(bindir, data, port, "stop")
    try:
        await asyncio.sleep(OUTAGE_SECONDS)
    finally:
        _pg_ctl(bindir, data, port, "start")
    outage = time.monotonic() - stopped

    try:
        outcomes = await results(handles, timeout=180)
    except AssertionError:
        status = await handles[0].query(PlaybookWorkflow.status)
        print(worker.tail(60), status)
        raise
    assert {r.outcome for r in outcomes} == {"finished"}
    dispose_engines()  # the pool's connections died with the server
    found = audit(sendgrid, session_factory(url))
    contacts = {c: [p["email"] for p in contacts_for(c)] for c in customers}
    assert_exactly_once(found, [h.id for h in handles], contacts)
    assert found.unconfirmed_not_received == 0, "an email was recorded but never sent"
    # An email accepted during the outage is still recorded 'sent' once the store is back.
    assert found.statuses().get("unconfirmed", 0) == 0, found.statuses()
    figures.update(
        outage_seconds=round(outage, 1),
        completed=len(outcomes),
        duplicate_emails=len(found.duplicate_emails),
        duplicate_tasks=len(found.duplicate_tasks),
        emails_unconfirmed=found.statuses().get("unconfirmed", 0),
    )
