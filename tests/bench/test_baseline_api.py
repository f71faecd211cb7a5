"""The hand-written baseline's event endpoint (`bench.baseline_api`), which the latency
scenario's like-for-like row measures: it must do the work it stands for (refuse a bad
token, store an event once, signal only a new one) or the row compares with less work."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from bench.baseline_api import create_baseline_api
from engine.api.auth import create_api_token
from engine.store.models import Event
from tests.helpers.databases import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The bench's store is SQLite or PostgreSQL (``--store-database``): both."""
    return str(request.param)


@pytest.fixture
async def posting(
    sessions: sessionmaker[Session], temporal_env: WorkflowEnvironment
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_baseline_api(sessions, temporal_env.client)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://b.invalid") as client:
        yield client


def token(sessions: sessionmaker[Session]) -> dict[str, str]:
    with sessions.begin() as session:
        return {"Authorization": f"Bearer {create_api_token(session, 'bench', ['ingest'])}"}


EVENT = {"id": "ev-1", "customer_id": "acme", "name": "bench.activated"}


async def test_a_missing_or_unknown_token_is_refused_and_nothing_is_stored(
    posting: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    assert (await posting.post("/events", json=EVENT)).status_code == 401
    wrong = {"Authorization": "Bearer not-a-token"}
    response = await posting.post("/events", json=EVENT, headers=wrong)
    assert response.status_code == 401
    assert "invalid API token" in response.text
    with sessions() as session:
        assert session.scalars(select(Event.id)).all() == []


async def test_the_event_is_stored_before_the_signal_and_a_repeat_signals_nothing(
    posting: httpx.AsyncClient, sessions: sessionmaker[Session]
) -> None:
    headers = token(sessions)
    # No workflow runs for the customer: the signal is tried (404), after the event is stored.
    first = await posting.post("/events", json=EVENT, headers=headers)
    assert first.status_code == 404
    assert "no workflow for 'acme'" in first.text
    with sessions() as session:
        assert session.scalars(select(Event.id)).all() == ["ev-1"]
    again = await posting.post("/events", json=EVENT, headers=headers)
    assert again.status_code == 202
    assert again.json() == {"id": "ev-1", "status": "duplicate"}
