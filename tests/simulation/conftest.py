"""Fixtures for the simulation acceptance tests: one Simulator for the whole session, on
the session's time-skipping server (`session_temporal_env` in tests/conftest.py), and the
example team."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.testing import WorkflowEnvironment

from engine.simulation import SimTeamMember, Simulator, load_team
from tests.helpers.paths import EXAMPLES


@pytest.fixture(scope="session")
async def sim(session_temporal_env: WorkflowEnvironment) -> AsyncIterator[Simulator]:
    async with Simulator(env=session_temporal_env) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def team() -> list[SimTeamMember]:
    return load_team(EXAMPLES / "team.yaml")
