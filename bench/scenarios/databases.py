"""A fresh store for one scenario: a new SQLite file, or a throwaway PostgreSQL database.

Scenarios that count everything in their store (a sweep enrolls every due customer; the
daily recompute scores every customer) need a store holding their own rows only.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.scenarios.spec import BenchFailure
from engine.store.db import dispose_engines, resolve_url


@contextmanager
def fresh_database(server: str | None, scenario: str) -> Iterator[str]:
    """The URL of a new SQLite file, or of a database created on the PostgreSQL server
    ``server`` for this run and dropped at the end (``bench_<scenario>_<random>``)."""
    if not server:
        with tempfile.TemporaryDirectory(prefix=f"bench-{scenario}-") as folder:
            try:
                yield f"sqlite:///{folder}/store.db"
            finally:
                dispose_engines()
        return
    if make_url(server).get_backend_name() != "postgresql":
        raise BenchFailure(f"{server!r} is not a PostgreSQL server's URL")
    admin = create_engine(resolve_url(server), isolation_level="AUTOCOMMIT")
    name = f"bench_{scenario}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield resolve_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
