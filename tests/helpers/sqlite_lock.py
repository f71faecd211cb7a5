"""Another writer holding SQLite's writer lock, for the tests of how the store waits for it
(tests/store/test_lock_polling.py, tests/store/test_writer_lock_wait.py)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker


def sqlite_file(sessions: sessionmaker[Session]) -> str:
    """The store's SQLite file; skips the test on another database."""
    url = sessions.kw["bind"].url
    if url.get_backend_name() != "sqlite":
        pytest.skip("SQLite's writer lock")
    return str(url.database)


def hold_writer_lock(path: str, seconds: float) -> threading.Thread:
    """Another writer that holds the lock for ``seconds`` (started when this returns)."""
    thread, _ = free_lock_at(path, seconds)
    return thread


def free_lock_at(path: str, seconds: float) -> tuple[threading.Thread, list[float]]:
    """Another writer that holds the lock until ``seconds`` from now (started when this
    returns); the list gets the `time.monotonic` moment it let go."""
    freed: list[float] = []
    taken = threading.Event()

    def hold() -> None:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        until = time.monotonic() + seconds
        taken.set()
        time.sleep(max(0.0, until - time.monotonic()))
        other.execute("COMMIT")
        freed.append(time.monotonic())
        other.close()

    thread = threading.Thread(target=hold)
    thread.start()
    taken.wait(5)
    return thread, freed


def busy_timeout(sessions: sessionmaker[Session]) -> int:
    """The busy timeout a connection from the pool has, in ms."""
    with sessions() as session:
        return int(session.execute(text("PRAGMA busy_timeout")).scalar_one())
