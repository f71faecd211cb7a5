"""The store's tests run on each backend: the shared database fixtures (tests/conftest.py)
get a `backend` parametrised over SQLite and PostgreSQL; the PostgreSQL variant is skipped
unless DATABASE_URL_POSTGRES is set (see tests/helpers/databases.py)."""

from __future__ import annotations

import pytest

from tests.helpers.databases import BACKENDS


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test run: "sqlite" or "postgres"."""
    return str(request.param)
