"""Initial schema of the store.

Revision ID: 0001
Revises:
Create Date: 2026-11-23

Types are spelled out here instead of imported from `engine.store.models` on purpose: a
revision is frozen history and must keep producing the same schema when the models move on.
`tests/store/test_migrations.py` checks that this revision matches the models exactly.
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    """A JSON document: JSONB on PostgreSQL, JSON text elsewhere."""
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _json_nullable() -> sa.types.TypeEngine[Any]:
    """Like `_json`, but Python None is stored as SQL NULL."""
    return sa.JSON(none_as_null=True).with_variant(
        postgresql.JSONB(none_as_null=True, astext_type=sa.Text()), "postgresql"
    )


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _str(length: int = 255) -> sa.String:
    return sa.String(length=length)


def upgrade() -> None:
    """Create every table of the store, with its constraints and indexes."""
    op.create_table(
        "customers",
        sa.Column("id", _str(), nullable=False),
        sa.Column("name", _str(), nullable=False),
        sa.Column("segment", _str(64), nullable=True),
        sa.Column("timezone", _str(64), nullable=False),
        sa.Column("owner_email", _str(320), nullable=True),
        sa.Column("renewal_date", sa.Date(), nullable=True),
        sa.Column("health_score", sa.Integer(), nullable=True),
        sa.Column("attributes", _json(), nullable=False),
        sa.Column("tags", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.CheckConstraint(
            "health_score IS NULL OR (health_score >= 0 AND health_score <= 100)",
            name=op.f("ck_customers_health_score_range"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    op.create_index(op.f("ix_customers_owner_email"), "customers", ["owner_email"])
    op.create_index(op.f("ix_customers_renewal_date"), "customers", ["renewal_date"])

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("customer_id", _str(), nullable=False),
        sa.Column("email", _str(320), nullable=False),
        sa.Column("first_name", _str(), nullable=True),
        sa.Column("last_name", _str(), nullable=True),
        sa.Column("role", _str(64), nullable=True),
        sa.Column("unsubscribed", sa.Boolean(), nullable=False),
        sa.Column("unsubscribed_at", _ts(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_contacts_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("customer_id", "email", name=op.f("uq_contacts_customer_id_email")),
    )
    op.create_index(op.f("ix_contacts_email"), "contacts", ["email"])

    op.create_table(
        "team_members",
        sa.Column("email", _str(320), nullable=False),
        sa.Column("name", _str(), nullable=False),
        sa.Column("manager_email", _str(320), nullable=True),
        sa.Column("roles", _json(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("password_hash", _str(), nullable=True),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_team_members")),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", _str(), nullable=False),
        sa.Column("token_hash", _str(64), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("last_used_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )

    op.create_table(
        "events",
        sa.Column("id", _str(), nullable=False),
        sa.Column("customer_id", _str(), nullable=False),
        sa.Column("name", _str(), nullable=False),
        sa.Column("at", _ts(), nullable=False),
        sa.Column("properties", _json(), nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.Column("status", _str(32), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    op.create_index("ix_events_customer_id_at", "events", ["customer_id", "at"])

    op.create_table(
        "milestone_states",
        sa.Column("customer_id", _str(), nullable=False),
        sa.Column("milestone", _str(), nullable=False),
        sa.Column("reached_at", _ts(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("value", _json_nullable(), nullable=True),
        sa.ForeignKeyConstraint(
            ["customer_id"],
            ["customers.id"],
            name=op.f("fk_milestone_states_customer_id_customers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("customer_id", "milestone", name=op.f("pk_milestone_states")),
    )

    op.create_table(
        "tasks",
        sa.Column("id", _str(), nullable=False),
        sa.Column("idempotency_key", _str(512), nullable=False),
        sa.Column("enrollment_id", _str(512), nullable=True),
        sa.Column("playbook_id", _str(), nullable=True),
        sa.Column("step_id", _str(), nullable=True),
        sa.Column("customer_id", _str(), nullable=True),
        sa.Column("assignee_email", _str(320), nullable=True),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("due_at", _ts(), nullable=True),
        sa.Column("priority", _str(16), nullable=False),
        sa.Column("outcomes", _json(), nullable=False),
        sa.Column("status", _str(32), nullable=False),
        sa.Column("outcome", _str(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("completed_by", _str(320), nullable=True),
        sa.Column("completed_at", _ts(), nullable=True),
        sa.Column("escalated_at", _ts(), nullable=True),
        sa.Column("escalation_of", _str(), nullable=True),
        sa.Column("created_at", _ts(), nullable=False),
        sa.ForeignKeyConstraint(
            ["escalation_of"],
            ["tasks.id"],
            name=op.f("fk_tasks_escalation_of_tasks"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_tasks_idempotency_key")),
    )
    op.create_index("ix_tasks_assignee_email_status", "tasks", ["assignee_email", "status"])
    op.create_index("ix_tasks_customer_id_status", "tasks", ["customer_id", "status"])
    op.create_index(op.f("ix_tasks_enrollment_id"), "tasks", ["enrollment_id"])

    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("idempotency_key", _str(512), nullable=False),
        sa.Column("enrollment_id", _str(512), nullable=True),
        sa.Column("playbook_id", _str(), nullable=True),
        sa.Column("step_id", _str(), nullable=True),
        sa.Column("customer_id", _str(), nullable=True),
        sa.Column("contact_email", _str(320), nullable=False),
        sa.Column("to_name", _str(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("headers", _json(), nullable=False),
        sa.Column("status", _str(32), nullable=False),
        sa.Column("provider_message_id", _str(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("sent_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_outbox_idempotency_key")),
    )
    op.create_index(op.f("ix_outbox_customer_id"), "outbox", ["customer_id"])
    op.create_index(op.f("ix_outbox_enrollment_id"), "outbox", ["enrollment_id"])
    op.create_index(op.f("ix_outbox_provider_message_id"), "outbox", ["provider_message_id"])

    op.create_table(
        "suppressions",
        sa.Column("email", _str(320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("source", _str(64), nullable=True),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_suppressions")),
    )

    op.create_table(
        "playbook_versions",
        sa.Column("playbook_id", _str(128), nullable=False),
        sa.Column("version", _str(128), nullable=False),
        sa.Column("name", _str(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("plan", _json(), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("playbook_id", "version", name=op.f("pk_playbook_versions")),
    )

    op.create_table(
        "enrollments",
        sa.Column("workflow_id", _str(512), nullable=False),
        sa.Column("playbook_id", _str(128), nullable=False),
        sa.Column("version", _str(128), nullable=False),
        sa.Column("customer_id", _str(), nullable=False),
        sa.Column("cycle_key", _str(128), nullable=True),
        sa.Column("status", _str(32), nullable=False),
        sa.Column("current_step", _str(), nullable=True),
        sa.Column("outcome", _str(64), nullable=True),
        sa.Column("started_at", _ts(), nullable=False),
        sa.Column("ended_at", _ts(), nullable=True),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("workflow_id", name=op.f("pk_enrollments")),
    )
    op.create_index(op.f("ix_enrollments_customer_id"), "enrollments", ["customer_id"])
    op.create_index("ix_enrollments_playbook_id_status", "enrollments", ["playbook_id", "status"])

    op.create_table(
        "webhook_events",
        sa.Column("id", _str(), nullable=False),
        sa.Column("received_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )


def downgrade() -> None:
    """Drop every table of the store (indexes go with their tables), children first."""
    for table in (
        "webhook_events",
        "enrollments",
        "playbook_versions",
        "suppressions",
        "outbox",
        "tasks",
        "milestone_states",
        "events",
        "api_tokens",
        "team_members",
        "contacts",
        "customers",
    ):
        op.drop_table(table)
