"""Every SQLite writer made by `engine.store.db.create_engine_for` waits for the writer lock
by polling it (the first write of a transaction takes the lock with ``BEGIN IMMEDIATE``,
tried every couple of milliseconds) rather than in SQLite's busy handler, whose sleeps grow
to 25, 50 and 100 ms: a waiting activity then took the lock long after it was free, while
the API, polling for it every millisecond, took it first again and again."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, event, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.store.db import _turns, create_engine_for, migrate
from engine.store.models import Event
from tests.helpers.sqlite_lock import busy_timeout, free_lock_at, hold_writer_lock, sqlite_file

# SQLite's busy handler tries again 1, 3, 8, 18, 33, 53, 78, 103, 128, 178 and 228 ms after
# a write first finds the lock taken: a lock freed at 185 ms is taken 43 ms late that way.
FREED_AT = 0.185


def test_a_write_takes_the_lock_soon_after_it_is_freed(sessions: sessionmaker[Session]) -> None:
    path = sqlite_file(sessions)
    late: list[float] = []
    for _ in range(3):  # the best of three: a loaded machine can delay any one thread
        holder, freed = free_lock_at(path, FREED_AT)
        with sessions.begin() as session:
            session.execute(text("DELETE FROM events WHERE id = 'none'"))
            taken = time.monotonic()
        holder.join()
        late.append(taken - freed[0])
    assert min(late) < 0.02, late  # SQLite's own waits: about 0.043 s
    assert busy_timeout(sessions) == 30_000  # the usual timeout is back after the write


def test_reads_do_not_wait_for_the_writer_lock(sessions: sessionmaker[Session]) -> None:
    holder = hold_writer_lock(sqlite_file(sessions), 1.0)
    began = time.monotonic()
    with sessions.begin() as session:
        assert session.scalars(select(Event.id)).all() == []
    assert time.monotonic() - began < 0.5
    holder.join()


@pytest.fixture
def short_timeout(tmp_path: Path) -> Engine:
    """A store whose connections wait 300 ms for the lock, not 30 s."""
    url = f"sqlite:///{tmp_path / 'short.db'}"
    migrate(url)
    engine = create_engine_for(url)

    @event.listens_for(engine, "connect")
    def _short(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout = 300")

    return engine


def test_a_write_still_fails_once_its_busy_timeout_has_passed(
    short_timeout: Engine, tmp_path: Path
) -> None:
    holder = hold_writer_lock(str(tmp_path / "short.db"), 2.0)
    began = time.monotonic()
    with (
        pytest.raises(OperationalError, match="database is locked"),
        short_timeout.begin() as connection,
    ):
        connection.execute(text("DELETE FROM events"))
    waited = time.monotonic() - began
    holder.join()
    assert 0.3 <= waited < 1.9, waited
    with short_timeout.connect() as connection:
        assert connection.execute(text("PRAGMA busy_timeout")).scalar_one() == 300
    short_timeout.dispose()


def test_an_autocommit_write_leaves_no_transaction_open(
    short_timeout: Engine, tmp_path: Path
) -> None:
    """In autocommit mode nobody commits: a transaction begun for such a write would keep
    the lock until the connection closed."""
    with short_timeout.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("DELETE FROM events WHERE id = 'none'"))
        assert not connection.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]
        other = sqlite3.connect(str(tmp_path / "short.db"), timeout=0.05)
        other.execute("DELETE FROM events WHERE id = 'none'")
        other.commit()
        other.close()
    short_timeout.dispose()


def _turn_taken(engine: Engine) -> bool:
    """Whether some connection of the process holds the engine's writer turn. (A turn left
    with a pooled connection would pass to the next thread that gets that connection, so
    timing the next writer alone would not show it was never given back.)"""
    return _turns[engine]._lock.locked()


def _connection_mid_write(engine: Engine) -> Connection:
    """A Core connection whose transaction has written, so it holds the writer turn."""
    connection = engine.connect()
    connection.execute(text("DELETE FROM events WHERE id = 'none'"))
    assert _turn_taken(engine)
    return connection


def _write_in_another_thread(engine: Engine) -> float | None:
    """Seconds a write in a new thread took (None: not done within 10 s)."""
    took: list[float] = []
    began = time.monotonic()

    def write() -> None:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM events WHERE id = 'none'"))
        took.append(time.monotonic() - began)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join(10)
    return took[0] if took else None


def _begin_tries(engine: Engine) -> dict[int, int]:
    """Per thread, how many ``BEGIN IMMEDIATE`` its connections send to SQLite from now on."""
    tries: dict[int, int] = {}

    def trace(statement: str) -> None:
        if statement.startswith("BEGIN IMMEDIATE"):
            ident = threading.get_ident()
            tries[ident] = tries.get(ident, 0) + 1

    engine.dispose()  # connections made from here on are traced
    event.listen(
        engine, "connect", lambda dbapi, _record: dbapi.set_trace_callback(trace), insert=True
    )
    return tries


def test_a_process_s_writers_wait_their_turn_instead_of_polling(
    sessions: sessionmaker[Session],
) -> None:
    """While one thread of the process writes, another waits for its turn on a lock, not by
    trying SQLite's writer lock every couple of milliseconds; it writes as soon as the
    first commits."""
    sqlite_file(sessions)
    engine = sessions.kw["bind"]
    tries = _begin_tries(engine)
    writing, committed = threading.Event(), threading.Event()
    done_at: list[float] = []

    def first() -> None:
        with sessions.begin() as session:
            session.execute(text("DELETE FROM events WHERE id = 'first'"))
            writing.set()
            time.sleep(0.3)
            committed.set()

    def second() -> None:
        writing.wait()
        with sessions.begin() as session:
            session.execute(text("DELETE FROM events WHERE id = 'second'"))
        done_at.append(time.monotonic())

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    second_ident = threads[1].ident
    assert committed.is_set() and done_at
    # Polling every 2 ms for 0.3 s would have been about 150 tries.
    assert tries.get(second_ident or 0, 0) <= 3, tries


def test_a_rolled_back_write_gives_the_turn_back(sessions: sessionmaker[Session]) -> None:
    """A transaction that fails after its first write leaves the turn free: the next writer
    of the process goes at once, not after its 30 s busy timeout."""
    sqlite_file(sessions)
    with pytest.raises(RuntimeError), sessions.begin() as session:
        session.execute(text("DELETE FROM events WHERE id = 'none'"))
        assert _turn_taken(sessions.kw["bind"])
        raise RuntimeError("the activity failed mid-transaction")
    assert not _turn_taken(sessions.kw["bind"])
    took = _write_in_another_thread(sessions.kw["bind"])
    assert took is not None and took < 1.0, took


def test_a_connection_returned_mid_transaction_gives_the_turn_back(
    sessions: sessionmaker[Session],
) -> None:
    """At the latest, the turn comes back with the connection (a Core connection closed
    without a commit: the pool rolls it back)."""
    sqlite_file(sessions)
    engine: Engine = sessions.kw["bind"]
    connection = _connection_mid_write(engine)
    connection.close()
    assert not _turn_taken(engine)
    took = _write_in_another_thread(engine)
    assert took is not None and took < 1.0, took


def test_an_invalidated_connection_gives_the_turn_back(sessions: sessionmaker[Session]) -> None:
    """A connection invalidated mid-transaction (a lost DBAPI connection) gives the turn back
    through the pool, and rolling its transaction back afterwards still works."""
    sqlite_file(sessions)
    engine: Engine = sessions.kw["bind"]
    connection = _connection_mid_write(engine)
    connection.invalidate()
    assert not _turn_taken(engine)
    connection.rollback()
    connection.close()
    took = _write_in_another_thread(engine)
    assert took is not None and took < 1.0, took
