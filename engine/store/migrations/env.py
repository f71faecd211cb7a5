"""Alembic environment for the store, configured from code (see `engine.store.db`).

The target URL comes from `config.attributes["url"]` (set by `alembic_config()`), else the
`sqlalchemy.url` option, else the application settings. A caller may also hand over an open
connection in `config.attributes["connection"]` to run migrations inside its transaction.
"""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import URL, Connection

from engine.store.db import create_engine_for, resolve_url
from engine.store.models import Base, UTCDateTime

config = context.config
target_metadata = Base.metadata


def _target_url() -> URL:
    url = config.attributes.get("url") or config.get_main_option("sqlalchemy.url")
    return resolve_url(url)


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Render our `UTCDateTime` as the plain column type it stores as.

    Revision scripts must not import application types: a script is frozen history, the
    application code keeps changing.
    """
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
        render_item=render_item,
        **kwargs,
    )


def _run_with(connection: Connection) -> None:
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL of the migrations (`--sql` mode) without connecting."""
    _configure(url=_target_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations against the database, on a given connection or a new engine."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection)
        return
    engine = create_engine_for(_target_url())
    try:
        with engine.connect() as connection:
            _run_with(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
