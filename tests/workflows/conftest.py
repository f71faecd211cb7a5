"""Fixtures for the workflow acceptance tests (see harness.py for the harness itself)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from engine.project import Project, load_project

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"


@pytest.fixture(scope="session")
def project() -> Project:
    """The shipped playbooks, compiled once."""
    loaded = load_project(PLAYBOOKS)
    assert not loaded.errors, loaded.errors
    return loaded


@pytest.fixture
def customer_id() -> str:
    """A fresh customer id per test, so enrollment ids (playbook/customer) are unique to
    the test even in logs and on a shared server."""
    return f"cust-{uuid.uuid4().hex[:10]}"
