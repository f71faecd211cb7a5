"""Engines, sessions and schema migrations for the store.

- `create_engine_for(url)` makes a new engine, tuned per backend (SQLite pragmas and a
  new file created with mode 0600, pool pre-ping on PostgreSQL). `engine_for(url)`
  returns a cached one per URL.
- `session_factory(url)` returns the cached `sessionmaker` for a URL; use it as
  `with session_factory(url).begin() as session: ...` so a block commits or rolls back as
  a whole. Repository functions never commit on their own.
- `migrate(url)` upgrades the schema to the newest Alembic revision; the schema is only
  ever created by migrations (never `metadata.create_all`), so every deployment has
  exactly the schema the migrations describe.

`url=None` everywhere means `get_settings().database_url`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# How long a SQLite writer waits for the lock before "database is locked": SQLite's busy
# handler retries with growing sleeps meanwhile. Long enough for a burst of enrollments whose
# activities queue on the single writer (with the worker's SQLite activity cap) to wait
# rather than fail.
SQLITE_BUSY_TIMEOUT_MS = 30_000
# How long one try of a writer that polls for the lock waits (`poll_sqlite_lock`).
SQLITE_LOCK_POLL_MS = 2
_POLLING = "playbook_polls_lock"
_USUAL_TIMEOUT = "playbook_busy_timeout"
_TURN = "playbook_writer_turn"

_lock = threading.Lock()
_turns: weakref.WeakKeyDictionary[Engine, _WriterTurn] = weakref.WeakKeyDictionary()
_engines: dict[str, Engine] = {}
_factories: dict[str, sessionmaker[Session]] = {}


def resolve_url(url: str | URL | None = None) -> URL:
    """Parse `url` (default: the configured one) and pin PostgreSQL to the psycopg 3 driver.

    Plain `postgresql://` and Heroku-style `postgres://` would otherwise pick psycopg2,
    which is not installed.
    """
    parsed = make_url(url if url is not None else get_settings().database_url)
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _sqlite_file(url: URL) -> Path | None:
    """The database file of a SQLite URL, or None for in-memory databases."""
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database)


def _create_private(path: Path) -> None:
    """Create the SQLite file (and its folder) readable by its owner only, if it is new.

    The store holds customer data, password hashes and token hashes; SQLite would create
    the file with the umask's mode (usually 0644). Its -wal and -shm files take the
    database file's mode. An existing file keeps the mode it has.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection SQLite settings.

    WAL lets readers proceed while one writer writes; foreign keys are off by default in
    SQLite; busy_timeout makes a writer wait for the lock instead of failing at once.
    """
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, faster
    finally:
        cursor.close()


def poll_sqlite_lock(session: Session, wait_ms: int = SQLITE_LOCK_POLL_MS) -> bool:
    """Under SQLite, take the writer lock for the session's transaction, giving up after
    ``wait_ms`` instead of `SQLITE_BUSY_TIMEOUT_MS` ("database is locked"); True
    if it did (else nothing changes). For a short write whose caller retries at once on
    "database is locked": SQLite's own busy handler sleeps 1, 2, 5 ... up to 100 ms
    between tries and keeps no queue, so a waiter can lose the lock to other writers many
    times in a row. The connection's usual timeout comes back when it returns to the pool."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return False
    _poll_with(connection, wait_ms)
    # The lock is taken now, as BEGIN IMMEDIATE does, not at the first write: a refusal
    # then comes before the caller has done any work (a retried batch redid its reads and
    # routing on each try, which cost more CPU than storing it when two API processes
    # shared the writer), and the reads that follow see the latest commit.
    if not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    return True


def try_sqlite_lock(session: Session) -> bool:
    """Under SQLite, one try at the writer lock for the session's transaction, without
    waiting: True if the transaction holds it now (or the store is not SQLite's), False
    if another writer has it. A refusal leaves the session as it was, so the caller can
    try again on the same connection after a pause of its own.

    `poll_sqlite_lock` in a loop began a new session for every try: a checkout, two
    pragmas, a failed statement and a rollback, about half a millisecond of the event
    loop each time while the worker's writers held the lock (bench/RESULTS.md, "One
    connection for all of an event's tries"). Here a refused try is one statement."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return True
    dbapi = connection.connection.dbapi_connection
    if dbapi.in_transaction:  # type: ignore[union-attr]
        return True
    _poll_with(connection, 0)
    try:
        dbapi.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            return False
        raise OperationalError("BEGIN IMMEDIATE", None, exc) from exc
    return True


def sqlite_locked_error() -> OperationalError:
    """The error a write that waited its whole time for SQLite's writer lock fails with
    (the API answers it 503, to be retried)."""
    cause = sqlite3.OperationalError("database is locked")
    return OperationalError("BEGIN IMMEDIATE", None, cause)


def _poll_with(connection: Connection, wait_ms: int) -> None:
    """Give the connection a busy timeout of ``wait_ms`` until it returns to the pool, where
    `_restore_busy_timeout` gives it back its own."""
    if connection.info.get(_POLLING) == wait_ms:
        return
    if _USUAL_TIMEOUT not in connection.info:  # once per connection, not per write
        usual = connection.exec_driver_sql("PRAGMA busy_timeout").scalar()
        connection.info[_USUAL_TIMEOUT] = usual
    connection.info[_POLLING] = wait_ms
    # Any engine, not only `create_engine_for`'s (the book simulation makes its own): a
    # connection left polling would fail every later caller's write after 2 ms.
    if not event.contains(connection.engine, "checkin", _restore_busy_timeout):
        event.listen(connection.engine, "checkin", _restore_busy_timeout)
    connection.exec_driver_sql(f"PRAGMA busy_timeout = {int(wait_ms)}")


# The statements before which Python's sqlite3 module begins a transaction on its own (in its
# default, legacy transaction control): the ones `_take_writer_lock` takes the lock for.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class _WriterTurn:
    """Whose turn it is, among this process's threads, to write to one SQLite database.

    SQLite lets one connection write at a time. A worker's activities (up to
    `worker_sqlite_max_concurrent_activities` threads) each polled for that lock on their
    own: when the lock was free, one of eight pollers took it, and the API's single poller
    (another process) lost to them again and again, an event's write waiting 10 ms and more
    at 25 events/s while the worker fell behind (bench/RESULTS.md, "The writer's turn and
    the sandbox's compiles").
    With a turn, the process's writers queue on a lock that costs no CPU while they wait,
    and only the thread whose turn it is polls SQLite, against the other processes.

    A turn is taken before a transaction's first write (`_take_writer_lock`) and given back
    when the transaction commits or rolls back, or at the latest when its connection goes
    back to the pool; a thread waits for the turn no longer than its busy timeout, then
    writes as it would have without one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def take(self, conn: Any, timeout: float) -> None:
        if self._lock.acquire(timeout=max(timeout, 0.0)):
            conn.info[_TURN] = self

    def give_back(self, info: dict[str, Any]) -> None:
        if info.pop(_TURN, None) is self:
            self._lock.release()

    def transaction_ended(self, conn: Connection) -> None:
        """The ``commit`` and ``rollback`` events of the engine's connections."""
        try:
            info = conn.info
        except SQLAlchemyError:
            return  # an invalidated connection: its ``invalidate`` event gives the turn back
        self.give_back(info)

    def connection_returned(self, _dbapi: Any, record: Any, *_: Any) -> None:
        """The pool's ``checkin`` and ``invalidate`` events."""
        self.give_back(record.info)


def _take_writer_lock(conn: Any, _cursor: Any, statement: str, *_args: Any, **_kwargs: Any) -> None:
    """Before a transaction's first write, take this process's writer turn (`_WriterTurn`),
    then SQLite's writer lock, by polling for it.

    Left to itself, the write would wait in SQLite's busy handler, whose sleeps grow to 25,
    50 and 100 ms and which keeps no queue: a worker's activity then took the lock long
    after it was free, while the API, polling every millisecond (`poll_sqlite_lock`), took
    it first again and again (p99 waits of 550 to 850 ms at 25 events/s, bench/RESULTS.md,
    "Waiting for SQLite's writer lock"). Here ``BEGIN IMMEDIATE`` is tried with a
    `SQLITE_LOCK_POLL_MS` busy timeout, again and again, until the connection's own timeout
    has passed; after that the write waits, and fails, as it would have.
    """
    dbapi = conn.connection.dbapi_connection
    if (
        dbapi.in_transaction
        or dbapi.isolation_level is None  # autocommit: nobody would commit what began here
        or getattr(dbapi, "autocommit", -1) != -1  # Python 3.12's explicit modes
        or not statement.lstrip()[:7].upper().startswith(_WRITES)
    ):
        return
    usual = conn.info.get(_USUAL_TIMEOUT)
    if usual is None:
        usual = conn.info[_USUAL_TIMEOUT] = dbapi.execute("PRAGMA busy_timeout").fetchone()[0]
    deadline = time.monotonic() + usual / 1000
    turn = _turns.get(conn.engine)
    if turn is not None and _TURN not in conn.info:
        turn.take(conn, deadline - time.monotonic())
    dbapi.execute(f"PRAGMA busy_timeout = {SQLITE_LOCK_POLL_MS}")
    try:
        while time.monotonic() < deadline:
            try:
                dbapi.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    return  # the write itself meets the error, and SQLAlchemy reports it
    finally:
        dbapi.execute(f"PRAGMA busy_timeout = {int(usual)}")


def engine_of(sessions: sessionmaker[Session]) -> Engine:
    """The engine ``sessions`` are bound to (for a read that needs no session)."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, Engine):
        raise TypeError(f"sessions bound to {bind!r}, not to an engine")
    return bind


def is_sqlite(sessions: sessionmaker[Session]) -> bool:
    """Whether the sessions' engine is SQLite's."""
    bind = sessions.kw.get("bind")
    return isinstance(bind, Engine) and bind.dialect.name == "sqlite"


def _restore_busy_timeout(dbapi_connection: Any, record: Any) -> None:
    """Back to the connection's own busy timeout when a `poll_sqlite_lock` connection is
    returned to the pool."""
    if record.info.pop(_POLLING, None) is not None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout={int(record.info[_USUAL_TIMEOUT])}")
        finally:
            cursor.close()


def create_engine_for(url: str | URL | None = None, **kwargs: Any) -> Engine:
    """A new engine for `url`; extra keyword arguments go to `sqlalchemy.create_engine`.

    For SQLite the parent directory of the database file is created and the pragmas of
    `_set_sqlite_pragmas` are applied to every connection.
    """
    parsed = resolve_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_file(parsed)
        if path is not None:
            _create_private(path.expanduser())
        engine = create_engine(parsed, **kwargs)
        event.listen(engine, "connect", _set_sqlite_pragmas)
        turn = _turns[engine] = _WriterTurn()
        event.listen(engine, "before_cursor_execute", _take_writer_lock)
        for ended in ("commit", "rollback"):  # the Connection's transaction ends
            event.listen(engine, ended, turn.transaction_ended)
        for returned in ("checkin", "invalidate"):  # at the latest: the DBAPI connection's end
            event.listen(engine, returned, turn.connection_returned)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(parsed, **kwargs)


def engine_for(url: str | URL | None = None) -> Engine:
    """The process-wide engine for `url`, created on first use."""
    key = resolve_url(url).render_as_string(hide_password=False)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = create_engine_for(key)
        return engine


def session_factory(url: str | URL | None = None) -> sessionmaker[Session]:
    """The process-wide session factory for `url`.

    `expire_on_commit=False` so objects returned from a committed block stay readable
    (activities return them after the transaction ends).
    """
    key = resolve_url(url).render_as_string(hide_password=False)
    engine = engine_for(key)
    with _lock:
        factory = _factories.get(key)
        if factory is None:
            factory = _factories[key] = sessionmaker(engine, expire_on_commit=False)
        return factory


def dispose_engines() -> None:
    """Close every cached engine's connections and forget them (tests, shutdown)."""
    with _lock:
        engines = list(_engines.values())
        _engines.clear()
        _factories.clear()
    for engine in engines:
        engine.dispose()


@contextlib.contextmanager
def throwaway_database(server: str | URL, prefix: str) -> Iterator[str]:
    """Create a database named ``<prefix>_<random>`` on the PostgreSQL server of ``server``
    (a URL of any database on it), yield its URL, then drop it, closing every cached
    engine's connections to it first: for benchmarks and tests that need a store holding
    their own rows only. The admin connection is checked before each use, so the drop
    works even after the server was restarted meanwhile."""
    base = resolve_url(server)
    admin = create_engine(base, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic config for the packaged migrations, targeting `url`; no alembic.ini.

    The URL travels in `config.attributes`, not the ini options, so that a `%` in a
    password is not taken for configparser interpolation.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["url"] = resolve_url(url)
    return config


def migrate(url: str | URL | None = None, revision: str = "head") -> None:
    """Upgrade the database at `url` to `revision` (default: the newest). Idempotent."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | URL | None = None, revision: str = "base") -> None:
    """Downgrade the database at `url` to `revision` (default: drop everything)."""
    command.downgrade(alembic_config(url), revision)
