"""Risk signals kept with each day's health score.

Revision ID: 0014_health_signals
Revises: 0013_health
Create Date: 2026-12-03

Adds `health_scores.signals`: each named risk signal of the scorecard (usage drop,
inactivity, repeated events, unused feature) with whether it was on, its value and text;
see `engine/language/health.py`.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0014_health_signals"
down_revision: str | Sequence[str] | None = "0013_health"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("health_scores") as batch:
        batch.add_column(
            sa.Column(
                "signals",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default="{}",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("health_scores") as batch:
        batch.drop_column("signals")
