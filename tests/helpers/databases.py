"""Fresh databases for tests, on SQLite and (when available) PostgreSQL.

- SQLite: a new database file under a not-yet-existing folder (the engine must create it).
- PostgreSQL: a new, uniquely named database on the server named by the environment variable
  DATABASE_URL_POSTGRES (e.g. `postgresql+psycopg://postgres@127.0.0.1:55432/postgres`,
  which `eval "$(.ci/postgres.sh)"` sets up), dropped afterwards. Without the variable a
  PostgreSQL test is skipped, with the reason shown in the summary.

The fixtures over these live in tests/conftest.py; tests/store/ runs on both backends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from engine.store.db import dispose_engines, resolve_url

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


def fresh_database(backend: str, folder: Path) -> Iterator[str]:
    """Yield the URL of a brand-new, empty database (no schema) on ``backend``; a SQLite
    file goes under ``folder``."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'data' / 'store.db'}"
        dispose_engines()
        return
    base_url = os.environ.get(POSTGRES_ENV)
    if not base_url:
        pytest.skip(f'{POSTGRES_ENV} is not set; run `eval "$(.ci/postgres.sh)"` to enable')
    yield from _postgres_database(base_url)
