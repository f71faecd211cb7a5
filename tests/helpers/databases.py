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
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store.db import dispose_engines, throwaway_database

POSTGRES_ENV = "DATABASE_URL_POSTGRES"
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


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
    with throwaway_database(base_url, "store_test") as url:
        yield url
