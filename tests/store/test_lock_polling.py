"""The API's event write polls for SQLite's writer lock (`engine.store.db.poll_sqlite_lock`,
`EventRouter.store`) instead of sleeping in SQLite's growing busy-handler waits: a try
gives up at once (a small batch, on the event loop) or after a few milliseconds (a big one,
in a thread), the router tries again until the lock is free, and the connection goes back
to the pool with the usual 30 s busy timeout."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from engine.client.routing import INLINE_BATCH, EventRouter
from engine.store.db import SQLITE_BUSY_TIMEOUT_MS, poll_sqlite_lock
from engine.store.events import IncomingEvent
from engine.store.models import Event
from tests.helpers.sqlite_lock import busy_timeout, hold_writer_lock, sqlite_file

AT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_a_polling_write_gives_up_at_once_and_the_timeout_comes_back(
    sessions: sessionmaker[Session],
) -> None:
    holder = hold_writer_lock(sqlite_file(sessions), 1.0)
    began = time.monotonic()
    with pytest.raises(OperationalError, match="locked"), sessions.begin() as session:
        assert poll_sqlite_lock(session)
        session.execute(text("DELETE FROM events"))
    assert time.monotonic() - began < 0.5  # not the 30 s busy timeout
    holder.join()
    assert busy_timeout(sessions) == SQLITE_BUSY_TIMEOUT_MS


def test_the_lock_is_taken_before_any_write(sessions: sessionmaker[Session]) -> None:
    """A polling transaction holds the writer lock from its start, so a try that is refused
    has done no work (the router's batch used to redo its reads and routing on each try)
    and its reads see the latest commit."""
    path = sqlite_file(sessions)
    with sessions.begin() as session:
        assert poll_sqlite_lock(session)
        session.execute(select(Event.id)).all()  # only a read so far
        other = sqlite3.connect(path, timeout=0.01)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("DELETE FROM events")
        other.close()


async def test_a_small_batch_waits_for_the_lock_without_stalling_the_event_loop(
    sessions: sessionmaker[Session],
) -> None:
    """Under SQLite a small batch is stored on the event loop (`EventRouter.store`): while
    another writer holds the lock, the loop must go on serving other requests, and the event
    is stored once the lock is free."""
    holder = hold_writer_lock(sqlite_file(sessions), 0.4)
    router = EventRouter(sessions, None, {}, {}, "queue")  # type: ignore[arg-type]
    ticks = 0
    storing = asyncio.create_task(
        router.handle_batch([IncomingEvent("e1", "nobody", "page.viewed", AT)])
    )
    while not storing.done():
        await asyncio.sleep(0.01)
        ticks += 1
    holder.join()
    assert (await storing)[0].status == "unknown_customer"
    assert ticks >= 15  # about 40 in the 0.4 s the lock was held
    with sessions() as session:
        assert session.scalars(select(Event.id)).all() == ["e1"]
    assert busy_timeout(sessions) == SQLITE_BUSY_TIMEOUT_MS


async def test_every_try_of_a_small_batch_is_made_on_one_connection(
    sessions: sessionmaker[Session],
) -> None:
    """While the lock is held, a refused try must cost a statement, not a new session: a
    checkout, pragmas and a rollback for each of some 300 tries took half a millisecond of
    the event loop each (bench/RESULTS.md, "One connection for all of an event's tries")."""
    engine = sessions.kw["bind"]
    checkouts: list[object] = []

    def count(*_: object) -> None:
        checkouts.append(None)

    holder = hold_writer_lock(sqlite_file(sessions), 0.3)
    router = EventRouter(sessions, None, {}, {}, "queue")  # type: ignore[arg-type]
    event.listen(engine, "checkout", count)
    try:
        answers = await router.handle_batch([IncomingEvent("e1", "nobody", "page.viewed", AT)])
    finally:
        event.remove(engine, "checkout", count)
    holder.join()
    assert [a.status for a in answers] == ["unknown_customer"]
    assert len(checkouts) == 1
    assert busy_timeout(sessions) == SQLITE_BUSY_TIMEOUT_MS


async def test_a_small_batch_that_never_gets_the_lock_fails_as_locked(
    sessions: sessionmaker[Session],
) -> None:
    """Past its wait the write fails with "database is locked" (the API answers 503, to be
    retried), stores nothing, and leaves the connection its usual timeout."""
    holder = hold_writer_lock(sqlite_file(sessions), 0.5)
    router = EventRouter(sessions, None, {}, {}, "queue")  # type: ignore[arg-type]
    router.lock_wait_seconds = 0.1
    with pytest.raises(OperationalError, match="database is locked"):
        await router.handle_batch([IncomingEvent("e1", "nobody", "page.viewed", AT)])
    holder.join()
    with sessions() as session:
        assert session.scalars(select(Event.id)).all() == []
    assert busy_timeout(sessions) == SQLITE_BUSY_TIMEOUT_MS


async def test_a_big_batch_is_stored_in_a_thread_once_the_lock_is_free(
    sessions: sessionmaker[Session],
) -> None:
    holder = hold_writer_lock(sqlite_file(sessions), 0.3)
    router = EventRouter(sessions, None, {}, {}, "queue")  # type: ignore[arg-type]
    events = [
        IncomingEvent(f"e{i:03}", "nobody", "page.viewed", AT) for i in range(INLINE_BATCH + 1)
    ]
    answers = await router.handle_batch(events)
    holder.join()
    assert [a.status for a in answers] == ["unknown_customer"] * len(events)
    with sessions() as session:
        assert len(session.scalars(select(Event.id)).all()) == len(events)
    assert busy_timeout(sessions) == SQLITE_BUSY_TIMEOUT_MS


def test_any_engine_gets_its_own_timeout_back_after_polling(tmp_path: Path) -> None:
    """An engine not made by `create_engine_for` (the book simulation makes its own, with a
    5 s timeout) must not keep a polling connection's 2 ms: every later write on it would
    fail at once."""
    from sqlalchemy import create_engine
    from sqlalchemy.orm import sessionmaker

    engine = create_engine(f"sqlite:///{tmp_path / 'own.db'}", connect_args={"timeout": 5})
    sessions = sessionmaker(engine)
    with sessions.begin() as session:
        assert poll_sqlite_lock(session)
        assert session.execute(text("PRAGMA busy_timeout")).scalar_one() == 2
    assert busy_timeout(sessions) == 5000
    engine.dispose()
