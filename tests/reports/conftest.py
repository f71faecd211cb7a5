"""The report queries run on each backend: SQLite, and PostgreSQL when
DATABASE_URL_POSTGRES is set (see tests/helpers/databases.py). The known data is written
once per module and backend (the reports only read it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session

from engine.store.db import migrate, session_factory
from tests.helpers.databases import BACKENDS, fresh_database
from tests.helpers.insight import seed_known


@pytest.fixture(scope="module", params=BACKENDS)
def known_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A database on each backend holding `tests.helpers.insight`'s known data."""
    for url in fresh_database(str(request.param), tmp_path_factory.mktemp("reports")):
        migrate(url)
        with session_factory(url).begin() as session:
            seed_known(session)
        yield url


@pytest.fixture
def known(known_url: str) -> Iterator[Session]:
    with session_factory(known_url)() as session:
        yield session
