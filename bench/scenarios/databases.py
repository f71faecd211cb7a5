"""A fresh store for one scenario: a new SQLite file, or a throwaway PostgreSQL database.

Scenarios that count everything in their store (a sweep enrolls every due customer; the
daily recompute scores every customer) need a store holding their own rows only.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import make_url

from bench.scenarios.spec import BenchFailure
from engine.store.db import dispose_engines, throwaway_database


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
    with throwaway_database(server, f"bench_{scenario}") as url:
        yield url
