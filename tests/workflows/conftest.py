"""Fixtures for the workflow acceptance tests (the harness is tests/helpers/harness.py)."""

from __future__ import annotations

import uuid
from functools import partial

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from engine.project import Project
from tests.helpers.onboarding import Onboarding, run_onboarding


@pytest.fixture
def customer_id() -> str:
    """A fresh customer id per test, so enrollment ids (playbook/customer) are unique to
    the test even in logs and on a shared server."""
    return f"cust-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def onboarding(
    temporal_env: WorkflowEnvironment,
    sessions: sessionmaker[Session],
    task_queue: str,
    project: Project,
    customer_id: str,
) -> Onboarding:
    """``async with onboarding(**customer) as (h, handle)``: the customer enrolled in the
    shipped onboarding playbook on a running worker (see tests/helpers/onboarding.py)."""
    return partial(run_onboarding, temporal_env, sessions, task_queue, project, customer_id)
