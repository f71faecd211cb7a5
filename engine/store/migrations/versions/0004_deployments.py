"""Deployments: which registered version of each playbook is current, and its history.

Revision ID: 0004_deployments
Revises: 0003_sessions
Create Date: 2026-12-03

Adds the `deployments` table (see `engine.store.models.Deployment` and
`engine.store.deployments`). Existing databases have no deployment yet: the next
`playbook up` deploys the working copy of each playbook, or `playbook deploy` does.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_deployments"
down_revision: str | Sequence[str] | None = "0003_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("playbook_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("deployed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deployed_by", sa.String(length=255), nullable=False),
        sa.Column("git_commit", sa.String(length=64), nullable=True),
        sa.Column("message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
    )
    op.create_index(op.f("ix_deployments_playbook_id_id"), "deployments", ["playbook_id", "id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_deployments_playbook_id_id"), table_name="deployments")
    op.drop_table("deployments")
