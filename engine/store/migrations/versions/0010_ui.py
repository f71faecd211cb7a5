"""Saved inbox views and the history of customers' health scores, for the web UI.

Revision ID: 0010_ui
Revises: 0009_tasks
Create Date: 2026-12-03

Adds `saved_views` (a team member's named inbox filters) and `health_changes` (each change
of a customer's health score, shown on the customer timeline); see `engine/store/models.py`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_ui"
down_revision: str | Sequence[str] | None = "0009_tasks"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _pk() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "saved_views",
        sa.Column("id", _pk(), nullable=False),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("query", sa.String(length=1000), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_saved_views")),
        sa.UniqueConstraint("owner_email", "name", name=op.f("uq_saved_views_owner_email_name")),
    )
    op.create_index(op.f("ix_saved_views_owner_email"), "saved_views", ["owner_email"])
    op.create_table(
        "health_changes",
        sa.Column("id", _pk(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("old", sa.Integer(), nullable=True),
        sa.Column("new", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_changes")),
    )
    op.create_index("ix_health_changes_customer_id_at", "health_changes", ["customer_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_health_changes_customer_id_at", table_name="health_changes")
    op.drop_table("health_changes")
    op.drop_index(op.f("ix_saved_views_owner_email"), table_name="saved_views")
    op.drop_table("saved_views")
