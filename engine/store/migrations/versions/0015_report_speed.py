"""Report speed: emails and tasks name the run that made them.

Revision ID: 0015_report_speed
Revises: 0014_health_signals
Create Date: 2026-12-03

`outbox.run_key` and `tasks.run_key` hold the `enrollment_key` of the enrollment run that
sent the email or created the task, so the email and task reports find its playbook version
by a key join (as the funnel's `step_visits.run_key`), not by matching times against every
run under the workflow ID (which a re-enrollment reuses). Rows written before this revision
are given the run that was going when they were made, the match the reports used until now.

Two covering indexes hold what the email and task reports read, in the order they group
by, so a year of 10,000 customers is counted from the indexes alone: `ix_outbox_report`
now carries the run key instead of the workflow ID, and `ix_tasks_report` is new.

`ix_enrollments_runs` gives a run's version, status and start by its key without reading
the row: the funnel, email and task reports join tens of thousands of visits, emails and
tasks to their runs this way. SQLite's planner, without statistics, prefers the primary
key's unique index (then reads the row, twice the work); so on SQLite two rows of
`sqlite_stat1` (the statistics `ANALYZE` keeps, which SQLite lets applications write) say
that both find one row per key, and it takes the covering one. A later `ANALYZE` replaces
them with measured ones, which lead to the same choice.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015_report_speed"
down_revision: str | Sequence[str] | None = "0014_health_signals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("outbox", "tasks")
OUTBOX_BEFORE = ["playbook_id", "step_id", "variant", "status", "created_at", "enrollment_id",
                 "customer_id"]  # fmt: skip
OUTBOX_REPORT = ["playbook_id", "step_id", "variant", "status", "created_at", "run_key",
                 "customer_id"]  # fmt: skip
RUNS = ["enrollment_key", "version", "status", "started_at"]
# SQLite statistics: "rows in the table, then rows per distinct value of each leading
# prefix of the index" (one row per key in both).
STATS = [("ix_enrollments_runs", "10000 1 1 1 1"), ("sqlite_autoindex_enrollments_1", "10000 1")]
TASKS_REPORT = ["playbook_id", "assignee_email", "outcome", "status", "created_at",
                "completed_at", "due_at", "escalated_at", "customer_id", "run_key"]  # fmt: skip


def _backfill(table: str) -> str:
    """The run under the row's workflow ID that was going when the row was made."""
    return (
        f"UPDATE {table} SET run_key = ("
        " SELECT e.enrollment_key FROM enrollments e"
        f" WHERE e.workflow_id = {table}.enrollment_id"
        f" AND {table}.created_at >= e.started_at"
        f" AND (e.ended_at IS NULL OR {table}.created_at <= e.ended_at)"
        " ORDER BY e.started_at DESC LIMIT 1"
        ") WHERE enrollment_id IS NOT NULL"
    )


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("run_key", sa.String(length=600), nullable=True))
        op.execute(_backfill(table))
    op.drop_index(op.f("ix_outbox_report"), table_name="outbox")
    op.create_index(op.f("ix_outbox_report"), "outbox", OUTBOX_REPORT)
    op.create_index(op.f("ix_tasks_report"), "tasks", TASKS_REPORT)
    op.create_index(op.f("ix_enrollments_runs"), "enrollments", RUNS)
    if op.get_bind().dialect.name == "sqlite":
        op.execute("ANALYZE sqlite_master")  # creates sqlite_stat1 if it is missing
        for index, stat in STATS:
            op.execute(f"DELETE FROM sqlite_stat1 WHERE tbl = 'enrollments' AND idx = '{index}'")
            op.execute(f"INSERT INTO sqlite_stat1 VALUES ('enrollments', '{index}', '{stat}')")


def downgrade() -> None:
    op.drop_index(op.f("ix_enrollments_runs"), table_name="enrollments")
    op.drop_index(op.f("ix_tasks_report"), table_name="tasks")
    op.drop_index(op.f("ix_outbox_report"), table_name="outbox")
    op.create_index(op.f("ix_outbox_report"), "outbox", OUTBOX_BEFORE)
    for table in reversed(TABLES):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("run_key")
