"""The CSM's day: task lifecycle, fair assignment, working calendars, notifications.

Revision ID: 0009_tasks
Revises: 0008_insight
Create Date: 2026-12-03

Adds to `tasks` the snooze, the reason a task was cancelled, how it was assigned and the
undo window of its completion; `task_comments`; `role_cursors` (round-robin assignment);
the working calendar of `team_members` (time zone, days, hours, time off); and
`notifications`, one row per task event and channel, so a delivery is never repeated.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009_tasks"
down_revision: str | Sequence[str] | None = "0008_insight"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _bigint_pk() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("snoozed_until", _ts(), nullable=True))
        batch.add_column(sa.Column("cancel_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("assigned_by", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("undo_until", _ts(), nullable=True))
    with op.batch_alter_table("team_members") as batch:
        batch.add_column(
            sa.Column("timezone", sa.String(length=64), server_default="UTC", nullable=False)
        )
        batch.add_column(
            sa.Column("working_days", _json(), server_default="[0, 1, 2, 3, 4]", nullable=False)
        )
        batch.add_column(
            sa.Column("work_start_minute", sa.Integer(), server_default="540", nullable=False)
        )
        batch.add_column(
            sa.Column("work_end_minute", sa.Integer(), server_default="1020", nullable=False)
        )
        batch.add_column(sa.Column("time_off", _json(), server_default="[]", nullable=False))

    op.create_table(
        "task_comments",
        sa.Column("id", _bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_comments_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_comments")),
    )
    op.create_index(op.f("ix_task_comments_task_id"), "task_comments", ["task_id"])

    op.create_table(
        "role_cursors",
        sa.Column("role", sa.String(length=255), nullable=False),
        sa.Column("last_email", sa.String(length=320), nullable=True),
        sa.PrimaryKeyConstraint("role", name=op.f("pk_role_cursors")),
    )

    op.create_table(
        "notifications",
        sa.Column("id", _bigint_pk(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.String(length=512), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("task_id", sa.String(length=255), nullable=True),
        sa.Column("recipient", sa.String(length=320), nullable=True),
        sa.Column("payload", _json(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
    )
    op.create_index(op.f("ix_notifications_task_id"), "notifications", ["task_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_task_id"), table_name="notifications")
    op.drop_table("notifications")
    op.drop_table("role_cursors")
    op.drop_index(op.f("ix_task_comments_task_id"), table_name="task_comments")
    op.drop_table("task_comments")
    with op.batch_alter_table("team_members") as batch:
        for column in ("time_off", "work_end_minute", "work_start_minute", "working_days"):
            batch.drop_column(column)
        batch.drop_column("timezone")
    with op.batch_alter_table("tasks") as batch:
        for column in ("undo_until", "assigned_by", "cancel_reason", "snoozed_until"):
            batch.drop_column(column)
