"""Insight: email engagement per outbox row, step visits, variants and report indexes.

Revision ID: 0008_insight
Revises: 0007_delivery
Create Date: 2026-12-03

Adds `engagement_events` (each SendGrid engagement event, once by its id), `email_engagement`
(first-seen time of each kind per outbox row, the email report's roll-up), `step_visits`
(which steps each enrollment entered: the funnel), and the indexes the
report queries use (`engine/services/reports/`). Engagement and visits before this revision
were not kept, so reports start from the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_insight"
down_revision: str | Sequence[str] | None = "0007_delivery"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _bigint() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index(
        op.f("ix_outbox_playbook_id_created_at"), "outbox", ["playbook_id", "created_at"]
    )
    op.create_index(op.f("ix_tasks_playbook_id_created_at"), "tasks", ["playbook_id", "created_at"])
    op.create_index(
        op.f("ix_milestone_states_milestone_reached_at"),
        "milestone_states",
        ["milestone", "reached_at"],
    )

    op.create_table(
        "engagement_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("outbox_id", _bigint(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("received_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engagement_events")),
    )
    op.create_index(
        op.f("ix_engagement_events_outbox_id_kind"), "engagement_events", ["outbox_id", "kind"]
    )

    op.create_table(
        "email_engagement",
        sa.Column("outbox_id", _bigint(), autoincrement=False, nullable=False),
        sa.Column("delivered_at", _ts(), nullable=True),
        sa.Column("opened_at", _ts(), nullable=True),
        sa.Column("clicked_at", _ts(), nullable=True),
        sa.Column("bounced_at", _ts(), nullable=True),
        sa.Column("spam_reported_at", _ts(), nullable=True),
        sa.Column("unsubscribed_at", _ts(), nullable=True),
        sa.Column("opens", sa.Integer(), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("outbox_id", name=op.f("pk_email_engagement")),
    )

    op.create_table(
        "step_visits",
        sa.Column("id", _bigint(), nullable=False),
        sa.Column("run_key", sa.String(length=512), nullable=False),
        sa.Column("workflow_id", sa.String(length=512), nullable=False),
        sa.Column("playbook_id", sa.String(length=128), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("customer_id", sa.String(length=255), nullable=False),
        sa.Column("step_id", sa.String(length=255), nullable=False),
        sa.Column("visit", sa.Integer(), nullable=False),
        sa.Column("entered_at", _ts(), nullable=False),
        sa.Column("latest", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_step_visits")),
        sa.UniqueConstraint(
            "run_key", "step_id", "visit", name=op.f("uq_step_visits_run_key_step_id_visit")
        ),
    )
    op.create_index(
        op.f("ix_step_visits_workflow_id_entered_at"),
        "step_visits",
        ["workflow_id", "entered_at"],
    )
    op.create_index(
        op.f("ix_step_visits_playbook_id_version"), "step_visits", ["playbook_id", "version"]
    )
    op.create_index(op.f("ix_step_visits_run_key_latest"), "step_visits", ["run_key", "latest"])


def downgrade() -> None:
    op.drop_index(op.f("ix_step_visits_run_key_latest"), table_name="step_visits")
    op.drop_index(op.f("ix_step_visits_playbook_id_version"), table_name="step_visits")
    op.drop_index(op.f("ix_step_visits_workflow_id_entered_at"), table_name="step_visits")
    op.drop_table("step_visits")
    op.drop_table("email_engagement")
    op.drop_index(op.f("ix_engagement_events_outbox_id_kind"), table_name="engagement_events")
    op.drop_table("engagement_events")
    op.drop_index(op.f("ix_milestone_states_milestone_reached_at"), table_name="milestone_states")
    op.drop_index(op.f("ix_tasks_playbook_id_created_at"), table_name="tasks")
    op.drop_index(op.f("ix_outbox_playbook_id_created_at"), table_name="outbox")
