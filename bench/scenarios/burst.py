"""Scenario burst (issue 20): N enrollments started at once by one schedule sweep.

An import or a schedule can start thousands of enrollments in the same minute. This
scenario makes that happen the way production does: a fresh store gets
``Sizes.burst_enrollments`` customers (one contact each, bulk-inserted, untimed) and a
deployed playbook with a ``schedule`` trigger that every one of them is due for; then ONE
`TriggerSweepWorkflow` (the workflow and activity the hourly Schedule runs) sweeps them, on
a task queue served by ``Sizes.burst_workers`` production worker processes
(`bench/worker.py`: `worker.build_worker`, `Settings.activity_slots`, so at most 8
activities at once per worker on SQLite). Each enrollment sends one email (captured in the
outbox; no API key) and parks on a 30-day wait, so it does real store work and then rests.

The run waits until the store shows all N parked on the wait (a stall of `STALL_SECONDS`
with nothing moving fails it) and reports: when all had started (the sweep's end, and
every enrollment's first record in the store), when all were parked and at what rate, the
errors (failure events in a sample of Temporal histories, failed activities and workflow
tasks in the workers' logs), the emails (exactly one per enrollment, or the run fails), the
largest activity backlog seen on the task queue, the workers' peak RSS, and the load average
at the start and the end.

Engine only: a hand-written workflow would not change what is measured (the store and the
worker's backpressure under a burst), so there is no baseline. Not in the default run:
``python -m bench --only burst`` (``--burst-enrollments``, ``--burst-workers``,
``--burst-database`` a PostgreSQL server, where a throwaway database is created and dropped).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType, TaskQueueType, TimeoutType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from bench.report import Metric
from bench.scenarios.databases import fresh_database
from bench.scenarios.spec import ENGINE, BenchFailure, Progress, Sizes
from bench.scenarios.stack import BENCH_PLAYBOOKS, Stack, WorkerProcess
from engine.client.deployment import deploy_working_copy
from engine.messages import SWEEP_WORKFLOW_NAME, SweepInput, SweepResult
from engine.project import load_project
from engine.settings import load_settings
from engine.statuses import EnrollmentStatus
from engine.store.db import migrate, session_factory
from engine.store.models import Contact, Customer, Enrollment, OutboxMessage, utcnow

PLAYBOOK_ID = "bench_burst"
PARK_STEP = "park"
# Due all year in every time zone: one sweep finds every customer of the book due.
PLAYBOOK = f"""\
playbook: {PLAYBOOK_ID}
name: Benchmark, burst
trigger: {{schedule: {{every: year}}}}
steps:
  - id: hello
    email:
      subject: "Hello {{{{ contact.first_name }}}}"
      body: "<p>{{{{ customer.name }}}} is enrolled.</p>"
      send_window: anytime
  - id: {PARK_STEP}
    wait: {{for: 30d}}
  - id: done
    end: {{outcome: done}}
"""
STALL_SECONDS = 120.0  # fail the run when nothing moves for this long
POLL_SECONDS = 0.5
BACKLOG_SECONDS = 2.0  # how often the task queue's activity backlog is read
SEED_CHUNK = 5000
# What the workers' logs say for a failed activity or workflow task (temporalio's wording).
LOG_ERRORS = {
    "failed activities": "Completing activity as failed",
    "failed workflow tasks": "Failed activation on workflow",
    "tracebacks": "Traceback (most recent call last)",
}
FAILURE_EVENTS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
}


@dataclasses.dataclass
class Progressed:
    """What the store showed at the last poll, and when each milestone of the run came."""

    rows: int = 0
    parked: int = 0
    emails: int = 0
    all_started: float | None = None
    all_parked: float | None = None
    sweep_done: float | None = None
    max_backlog: int | None = None


def seed(sessions: sessionmaker[Session], n: int) -> None:
    """``n`` customers with one contact each, in bulk (not part of any timing)."""
    now = utcnow()
    with sessions.begin() as session:
        for start in range(0, n, SEED_CHUNK):
            ids = [f"burst-{i:06d}" for i in range(start, min(n, start + SEED_CHUNK))]
            session.execute(
                insert(Customer),
                [
                    {"id": c, "name": f"Customer {c}", "timezone": "UTC", "attributes": {},
                     "tags": [], "created_at": now, "updated_at": now}
                    for c in ids
                ],
            )  # fmt: skip
            session.execute(
                insert(Contact),
                [
                    {"customer_id": c, "email": f"ada@{c}.example", "first_name": "Ada",
                     "role": "admin", "unsubscribed": False}
                    for c in ids
                ],
            )  # fmt: skip


def deploy(sessions: sessionmaker[Session], root: Path) -> None:
    """Deploy the burst playbook into the store, as `playbook deploy` does (the sweep
    activity reads the deployed plan; no Schedule is made: the run starts the sweep)."""
    root.mkdir(parents=True)
    shutil.copy(BENCH_PLAYBOOKS / "milestones.yaml", root / "milestones.yaml")
    (root / f"{PLAYBOOK_ID}.yaml").write_text(PLAYBOOK)
    project = load_project(root)
    if project.errors:
        raise BenchFailure("burst playbook: " + "; ".join(map(str, project.errors)))
    deploy_working_copy(sessions, project, [PLAYBOOK_ID], by="bench")


def poll_store(sessions: sessionmaker[Session]) -> tuple[int, int, int, int]:
    """(enrollment rows, parked on the wait, ended before it, outbox rows)."""
    parked = (Enrollment.status == EnrollmentStatus.RUNNING) & (
        Enrollment.current_step == PARK_STEP
    )
    ended = Enrollment.status != EnrollmentStatus.RUNNING
    with sessions() as session:
        rows, n_parked, n_ended = session.execute(
            select(
                func.count(),
                func.count().filter(parked),
                func.count().filter(ended),
            ).where(Enrollment.playbook_id == PLAYBOOK_ID)
        ).one()
        emails = session.scalar(select(func.count()).select_from(OutboxMessage)) or 0
    return int(rows), int(n_parked), int(n_ended), int(emails)


async def activity_backlog(client: Client, queue: str) -> int | None:
    """The task queue's approximate activity backlog (tasks waiting for a worker's slot),
    or None when the server does not report it."""
    try:
        response = await client.workflow_service.describe_task_queue(
            DescribeTaskQueueRequest(
                namespace=client.namespace,
                task_queue=TaskQueue(name=queue),
                task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
                report_stats=True,
            )
        )
    except Exception:  # an older server: the figure is optional
        return None
    if not response.HasField("stats"):
        return None
    return int(response.stats.approximate_backlog_count)


async def watch(
    sessions: sessionmaker[Session],
    client: Client,
    queue: str,
    sweep: WorkflowHandle[object, SweepResult],
    n: int,
    began: float,
    workers: list[WorkerProcess],
    report: Callable[[float], None],
) -> tuple[Progressed, SweepResult]:
    """Poll until all ``n`` are parked and the sweep has ended; fail on a stall, on an
    enrollment that ended, on a failed sweep or a dead worker."""
    seen = Progressed()
    result: asyncio.Task[SweepResult] = asyncio.create_task(sweep.result())
    last, last_change, last_backlog = (-1, -1, -1), time.perf_counter(), 0.0
    try:
        while True:
            rows, parked, ended, emails = poll_store(sessions)
            now = time.perf_counter()
            seen.rows, seen.parked, seen.emails = rows, parked, emails
            report(parked)
            if ended:
                raise BenchFailure(f"burst: {ended} enrollments ended before their wait")
            if rows >= n and seen.all_started is None:
                seen.all_started = now - began
            if result.done():
                if seen.sweep_done is None:
                    seen.sweep_done = now - began
                try:
                    enrolled = len(set(result.result().enrolled))
                except WorkflowFailureError as exc:
                    raise BenchFailure(f"burst: the sweep failed: {exc.cause}") from exc
                if enrolled != n:
                    raise BenchFailure(f"burst: the sweep enrolled {enrolled}, expected {n}")
            if parked >= n and seen.all_parked is None:
                seen.all_parked = now - began
            if seen.all_parked is not None and seen.sweep_done is not None:
                return seen, result.result()
            if now - last_backlog >= BACKLOG_SECONDS:
                last_backlog = now
                backlog = await activity_backlog(client, queue)
                if backlog is not None:
                    seen.max_backlog = max(seen.max_backlog or 0, backlog)
            if (rows, parked, emails) != last:
                last, last_change = (rows, parked, emails), now
            elif now - last_change > STALL_SECONDS:
                tail = "\n".join(w.log_tail() for w in workers)
                raise BenchFailure(
                    f"burst: stuck for {STALL_SECONDS:.0f} s at {rows} started, {parked}/{n}"
                    f" parked, {emails} emails\n{tail}"
                )
            for worker in workers:
                worker.check_alive()
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if not result.done():
            result.cancel()


def check_emails(sessions: sessionmaker[Session], n: int) -> list[str]:
    """Problems with the outbox: it must hold exactly one captured email per customer."""
    with sessions() as session:
        rows = session.execute(
            select(
                OutboxMessage.customer_id,
                OutboxMessage.step_id,
                OutboxMessage.status,
                OutboxMessage.idempotency_key,
            )
        ).all()
    problems = [f"{len(rows)} emails in the outbox, expected {n}"] if len(rows) != n else []
    per_customer = Counter(r[0] for r in rows)
    problems += [f"{k} got {v} emails" for k, v in per_customer.items() if v > 1][:5]
    if len(per_customer) != n:
        problems.append(f"{len(per_customer)} customers got an email, expected {n}")
    keys = Counter(r[3] for r in rows)
    problems += [f"duplicate outbox key {k}" for k, v in keys.items() if v > 1][:5]
    problems += [f"email {c}/{s} is {st}" for c, s, st, _ in rows if st != "captured"][:5]
    return problems


REROUTED = "sticky workflow task rerouted (schedule-to-start)"
"""A workflow task the worker that cached the workflow did not pick up from its sticky
queue in time (10 s): the server hands it to the normal queue and any worker replays the
workflow. Temporal's own rerouting, not a failure: counted apart from the errors."""


async def history_errors(client: Client, workflow_ids: list[str]) -> Counter[str]:
    """Failure events (activity failed or timed out, workflow task failed or timed out,
    workflow failed) in the histories of ``workflow_ids``; a sticky workflow task's
    schedule-to-start timeout counts as `REROUTED`."""
    found: Counter[str] = Counter()
    for wid in workflow_ids:
        history = await client.get_workflow_handle(wid).fetch_history()
        for event in history.events:
            if event.event_type not in FAILURE_EVENTS:
                continue
            name = EventType.Name(event.event_type)
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                kind = event.workflow_task_timed_out_event_attributes.timeout_type
                if kind == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
                    name = REROUTED
                else:
                    name += f" ({TimeoutType.Name(kind)})"
            found[name] += 1
    return found


def log_errors(workers: list[WorkerProcess]) -> Counter[str]:
    """How often the workers' logs report a failed activity, workflow task or traceback."""
    found: Counter[str] = Counter()
    for worker in workers:
        try:
            log = worker.log.read_text(errors="replace")
        except OSError:
            continue
        for label, marker in LOG_ERRORS.items():
            found[label] += log.count(marker)
    return found


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())


async def burst(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    """Seed and deploy, start the workers, sweep once, wait for every enrollment to park."""
    n = sizes.burst_enrollments
    with fresh_database(sizes.burst_database, "burst") as url:
        store = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
        migrate(url)
        sessions = session_factory(url)
        report = progress.phase(f"burst: seeding {n} customers", 1)
        seed(sessions, n)
        deploy(sessions, stack.tmp / f"burst-{uuid.uuid4().hex[:8]}")
        report(1)
        run = dataclasses.replace(stack, db_url=url, sessions=sessions, workers=[])
        queue = f"burst-{uuid.uuid4().hex[:8]}"
        async with AsyncExitStack() as running:
            workers: list[WorkerProcess] = []
            for index in range(sizes.burst_workers):
                worker = WorkerProcess(run, ENGINE, queue)
                worker.log = stack.tmp / f"worker-{queue}-{index}.log"
                workers.append(await running.enter_async_context(worker))
            load_start = _load()
            report = progress.phase(f"burst: {n} enrollments parking ({store})", n)
            began = time.perf_counter()
            sweep: WorkflowHandle[object, SweepResult] = await stack.client.start_workflow(
                SWEEP_WORKFLOW_NAME,
                SweepInput(playbook=PLAYBOOK_ID),
                id=f"{queue}-sweep",
                task_queue=queue,
                result_type=SweepResult,
            )
            seen, result = await watch(
                sessions, stack.client, queue, sweep, n, began, workers, report
            )
            await asyncio.sleep(1.0)  # let the last workflow tasks settle
            peak_mb = sum(w.memory_kb()["VmHWM"] for w in workers) / 1024
            load_end = _load()
            logged = log_errors(workers)
        problems = check_emails(sessions, n)
        if len(set(result.enrolled)) != n:
            problems.append(f"the sweep enrolled {len(set(result.enrolled))}, expected {n}")
        query = f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'"
        for _ in range(50):  # visibility can trail the workflows by a moment
            running_count = (await stack.client.count_workflows(query)).count
            if running_count == n:
                break
            await asyncio.sleep(0.1)
        if running_count != n:
            problems.append(f"Temporal has {running_count} running workflows, expected {n}")
        if problems:
            raise BenchFailure(f"burst ({store}): " + "; ".join(problems[:8]))
        enrolled = sorted(result.enrolled)
        # An even sample of the enrollments, and the sweep's own history.
        sample = enrolled[:: max(1, n // sizes.history_sample)][: sizes.history_sample]
        sample.append(sweep.id)
        in_history = await history_errors(stack.client, sample)
    assert seen.all_parked is not None and seen.all_started is not None
    assert seen.sweep_done is not None
    # What each worker process computes from the same settings (`bench/worker.py`).
    slots = load_settings(playbook_home=stack.tmp, database_url=url).activity_slots
    size = f"{n} enrollments, {store}, {sizes.burst_workers} worker(s)"
    load = f"load {load_start} at the start, {load_end} at the end"
    errors = sum(v for k, v in in_history.items() if k != REROUTED)
    errors += logged["failed activities"]
    errors += logged["failed workflow tasks"]
    history_note = ", ".join(f"{k} {v}" for k, v in sorted(in_history.items())) or "none"
    log_note = ", ".join(f"{k} {v}" for k, v in sorted(logged.items()))
    backlog = "not reported" if seen.max_backlog is None else f"{seen.max_backlog}"
    return [
        Metric(
            "burst",
            f"{size}: all started",
            "s",
            seen.all_started,
            note=f"the sweep itself ended at {seen.sweep_done:.1f} s; {load}",
        ),
        Metric("burst", f"{size}: all parked", "s", seen.all_parked, note=load),
        Metric("burst", f"{size}: parked per second", "/s", n / seen.all_parked),
        Metric(
            "burst",
            f"{size}: errors",
            "",
            float(errors),
            goal="0",
            met=errors == 0,
            note=f"in {len(sample)} sampled histories: {history_note}; "
            f"in the workers' logs: {log_note}",
        ),
        Metric(
            "burst",
            f"{size}: emails in the outbox",
            "",
            float(seen.emails),
            goal=f"= {n}, none twice",
            met=True,
        ),
        Metric(
            "burst",
            f"{size}: workers' peak RSS",
            "MB",
            peak_mb,
            note=f"{slots} activity slots per worker; largest activity backlog on the task "
            f"queue: {backlog}",
        ),
    ]
