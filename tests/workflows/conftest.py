"""Fixtures for the workflow acceptance tests (the harness is tests/helpers/harness.py)."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def customer_id() -> str:
    """A fresh customer id per test, so enrollment ids (playbook/customer) are unique to
    the test even in logs and on a shared server."""
    return f"cust-{uuid.uuid4().hex[:10]}"
