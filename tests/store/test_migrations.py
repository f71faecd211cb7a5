"""The migrations build exactly the schema the models describe, and can be undone."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Engine, Integer, MetaData, inspect

from engine.settings import settings_override
from engine.store.db import alembic_config, create_engine_for, downgrade, migrate
from engine.store.models import Base

ALL_TABLES = set(Base.metadata.tables)


def _schema_diff(engine: Engine, metadata: MetaData) -> list[object]:
    """Alembic autogenerate's differences between the live database and `metadata`."""
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, metadata))


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return set(inspect(connection).get_table_names())


@pytest.fixture
def engine(empty_db_url: str) -> Iterator[Engine]:
    engine = create_engine_for(empty_db_url)
    yield engine
    engine.dispose()


def test_one_linear_history_starting_at_0001() -> None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script.get_heads() == [script.get_current_head()]
    assert [rev.revision for rev in script.walk_revisions()][-1] == "0001"


def test_upgrade_head_gives_exactly_the_models_schema(empty_db_url: str, engine: Engine) -> None:
    migrate(empty_db_url)

    assert _tables(engine) == ALL_TABLES | {"alembic_version"}
    assert _schema_diff(engine, Base.metadata) == []


def test_schema_comparison_would_notice_a_drift(db_url: str) -> None:
    """Guard against the test above passing vacuously: a changed model shows up as a diff."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["customers"].append_column(Column("arr", Integer, nullable=True))

    engine = create_engine_for(db_url)
    try:
        diff = _schema_diff(engine, drifted)
    finally:
        engine.dispose()

    assert [entry[0] for entry in diff] == ["add_column"]  # type: ignore[index]


def test_migrate_twice_is_a_no_op(db_url: str, engine: Engine) -> None:
    migrate(db_url)

    assert _schema_diff(engine, Base.metadata) == []


def test_downgrade_base_removes_every_table_and_upgrade_restores_them(
    db_url: str, engine: Engine
) -> None:
    downgrade(db_url, "base")

    assert _tables(engine) <= {"alembic_version"}

    migrate(db_url)
    assert _schema_diff(engine, Base.metadata) == []


@pytest.mark.postgres
def test_postgres_uses_jsonb_bigint_and_timestamptz(postgres_db_url: str) -> None:
    """Types the generic comparison may let pass: check them in the real catalog."""
    engine = create_engine_for(postgres_db_url)
    try:
        columns = {c["name"]: c["type"] for c in inspect(engine).get_columns("outbox")}
    finally:
        engine.dispose()

    assert type(columns["id"]).__name__ == "BIGINT"
    assert type(columns["headers"]).__name__ == "JSONB"
    assert getattr(columns["created_at"], "timezone", False) is True


def test_indexes_needed_by_queries_exist(db_url: str, engine: Engine) -> None:
    def index_columns(table: str) -> set[tuple[str, ...]]:
        indexes = inspect(engine).get_indexes(table)
        return {tuple(str(c) for c in ix["column_names"]) for ix in indexes}

    assert ("assignee_email", "status") in index_columns("tasks")
    assert ("enrollment_id",) in index_columns("outbox")
    assert ("customer_id", "at") in index_columns("events")
    assert ("playbook_id", "status") in index_columns("enrollments")


def test_offline_mode_emits_the_postgres_ddl() -> None:
    """`--sql` mode works without a server, for DBAs who apply DDL by hand."""
    config = alembic_config("postgresql://nobody@localhost/none")
    config.output_buffer = io.StringIO()

    command.upgrade(config, "head", sql=True)

    ddl = config.output_buffer.getvalue()
    for table in ALL_TABLES:
        assert f"CREATE TABLE {table} (" in ddl
    assert "JSONB" in ddl


def test_migrate_defaults_to_the_configured_sqlite_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    # database_url="" so a DATABASE_URL in the environment cannot redirect this test.
    with settings_override(playbook_home=home, database_url="") as settings:
        migrate()

    assert settings.database_url == f"sqlite:///{home / 'playbook.db'}"
    engine = create_engine_for(settings.database_url)
    try:
        assert _tables(engine) == ALL_TABLES | {"alembic_version"}
    finally:
        engine.dispose()
