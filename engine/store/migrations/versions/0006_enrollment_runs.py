"""One `enrollments` row per run, not per workflow ID.

Revision ID: 0006_enrollment_runs
Revises: 0004_deployments
Create Date: 2026-12-03

A re-enrollment (``reenroll: always`` or a gap) reuses the workflow ID, so keyed by it the
second run overwrote the first one's row. The key is now the run's own `enrollment_key`;
existing rows (one run each) take their workflow ID as key, the prefix their emails and
tasks already carry. `workflow_id` stays, indexed, for "the runs of this workflow".
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_enrollment_runs"
down_revision: str | Sequence[str] | None = "0004_deployments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("enrollments") as batch:
        batch.add_column(sa.Column("enrollment_key", sa.String(length=600), nullable=True))
    op.execute("UPDATE enrollments SET enrollment_key = workflow_id")
    with op.batch_alter_table("enrollments") as batch:
        batch.alter_column("enrollment_key", existing_type=sa.String(length=600), nullable=False)
        batch.drop_constraint("pk_enrollments", type_="primary")
        batch.create_primary_key("pk_enrollments", ["enrollment_key"])
        batch.create_index("ix_enrollments_workflow_id", ["workflow_id"])


def downgrade() -> None:
    """Keep the newest run of each workflow ID (the old table held only that one)."""
    op.execute(
        "DELETE FROM enrollments WHERE EXISTS (SELECT 1 FROM enrollments AS newer "
        "WHERE newer.workflow_id = enrollments.workflow_id "
        "AND newer.started_at > enrollments.started_at)"
    )
    with op.batch_alter_table("enrollments") as batch:
        batch.drop_index("ix_enrollments_workflow_id")
        batch.drop_constraint("pk_enrollments", type_="primary")
        batch.create_primary_key("pk_enrollments", ["workflow_id"])
        batch.drop_column("enrollment_key")
