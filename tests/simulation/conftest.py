"""Fixtures for the simulation acceptance tests: one Simulator for the whole session, on
the session's time-skipping server (`session_temporal_env` in tests/conftest.py), and the
shipped playbooks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from simkit import EXAMPLES, PLAYBOOKS
from temporalio.testing import WorkflowEnvironment

from engine.project import Project, load_project
from engine.simulation import SimTeamMember, Simulator, load_team


@pytest.fixture(scope="session")
async def sim(session_temporal_env: WorkflowEnvironment) -> AsyncIterator[Simulator]:
    async with Simulator(env=session_temporal_env) as simulator:
        yield simulator


@pytest.fixture(scope="session")
def project() -> Project:
    loaded = load_project(PLAYBOOKS)
    assert not loaded.errors, loaded.errors
    return loaded


@pytest.fixture(scope="session")
def team() -> list[SimTeamMember]:
    return load_team(EXAMPLES / "team.yaml")
