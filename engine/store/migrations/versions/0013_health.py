"""Health scorecards: each customer's band and a daily history of computed scores.

Revision ID: 0013_health
Revises: 0011_report_indexes
Create Date: 2026-12-03

Adds `customers.health_band`, the bands either side of a `health_changes` row, and
`health_scores` (one computed score per customer per day, with its measures); see
`engine/store/models.py` and `engine/language/health.py`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0013_health"
down_revision: str | Sequence[str] | None = "0011_report_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _pk() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("health_band", sa.String(length=32), nullable=True))
    with op.batch_alter_table("health_changes") as batch:
        batch.add_column(sa.Column("old_band", sa.String(length=32), nullable=True))
        batch.add_column(sa.Column("new_band", sa.String(length=32), nullable=True))
    op.create_table(
        "health_scores",
        sa.Column("id", _pk(), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("band", sa.String(length=32), nullable=False),
        sa.Column("known", sa.Float(), nullable=False),
        sa.Column(
            "measures",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_scores")),
        sa.UniqueConstraint("customer_id", "day", name=op.f("uq_health_scores_customer_id_day")),
    )


def downgrade() -> None:
    op.drop_table("health_scores")
    with op.batch_alter_table("health_changes") as batch:
        batch.drop_column("new_band")
        batch.drop_column("old_band")
    with op.batch_alter_table("customers") as batch:
        batch.drop_column("health_band")
