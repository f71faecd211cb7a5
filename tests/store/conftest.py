"""Fixtures giving each test a fresh database, on SQLite and (when available) PostgreSQL.

`db_url` is parametrised over two backends:
- `sqlite`: a new database file in the test's tmp dir;
- `postgres`: a new, uniquely named database on the server named by the environment variable
  DATABASE_URL_POSTGRES (e.g. `postgresql+psycopg://postgres@127.0.0.1:55432/postgres`,
  which `eval "$(.ci/postgres.sh)"` sets up), dropped after the test. Without the variable
  the postgres variant is skipped, with the reason shown in the summary.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from engine.store.db import dispose_engines, migrate, resolve_url, session_factory

POSTGRES_ENV = "DATABASE_URL_POSTGRES"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_database(base_url: str) -> Iterator[str]:
    """Create a throwaway database next to `base_url`, yield its URL, then drop it."""
    admin = create_engine(resolve_url(base_url), isolation_level="AUTOCOMMIT")
    name = f"store_test_{uuid.uuid4().hex[:16]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield resolve_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()  # the cached engines hold connections to the database
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The backend of this test run: "sqlite" or "postgres"."""
    return str(request.param)


def _fresh_database(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if backend == "sqlite":
        # A not-yet-existing subdirectory: the engine must create it.
        path = tmp_path_factory.mktemp("store") / "data" / "store.db"
        yield f"sqlite:///{path}"
        dispose_engines()
        return
    base_url = os.environ.get(POSTGRES_ENV)
    if not base_url:
        pytest.skip(f'{POSTGRES_ENV} is not set; run `eval "$(.ci/postgres.sh)"` to enable')
    yield from _postgres_database(base_url)


@pytest.fixture
def empty_db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a brand-new, empty database (no schema) on `backend`."""
    yield from _fresh_database(backend, tmp_path_factory)


@pytest.fixture
def postgres_db_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a brand-new PostgreSQL database migrated to head (PostgreSQL-only tests)."""
    for url in _fresh_database("postgres", tmp_path_factory):
        migrate(url)
        yield url


@pytest.fixture
def db_url(empty_db_url: str) -> str:
    """URL of a fresh database migrated to the newest schema."""
    migrate(empty_db_url)
    return empty_db_url


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    """A session on the fresh database; tests commit when they need to."""
    with session_factory(db_url)() as session:
        yield session
