"""Respectful delivery: each contact's zone, locale and country; the contact budget.

Revision ID: 0007_delivery
Revises: 0006_enrollment_runs
Create Date: 2026-12-03

Adds `customers.country` and `.locale`, `contacts.timezone`, `.locale` and `.country`
(None: the customer's), the outbox columns `variant`, `budget_at`, `priority` and
`not_before`, and the `contact_budgets` lock rows (docs/delivery.md).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_delivery"
down_revision: str | Sequence[str] | None = "0006_enrollment_runs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("customers") as batch:
        batch.add_column(sa.Column("country", sa.String(length=2), nullable=True))
        batch.add_column(sa.Column("locale", sa.String(length=35), nullable=True))
    with op.batch_alter_table("contacts") as batch:
        batch.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("locale", sa.String(length=35), nullable=True))
        batch.add_column(sa.Column("country", sa.String(length=2), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("variant", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("budget_at", _ts(), nullable=True))
        batch.add_column(sa.Column("priority", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("not_before", _ts(), nullable=True))
    op.create_index(
        op.f("ix_outbox_contact_email_budget_at"), "outbox", ["contact_email", "budget_at"]
    )
    op.create_table(
        "contact_budgets",
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("charged", sa.Integer(), nullable=False),
        sa.Column("updated_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("email", name=op.f("pk_contact_budgets")),
    )


def downgrade() -> None:
    op.drop_table("contact_budgets")
    op.drop_index(op.f("ix_outbox_contact_email_budget_at"), table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        for column in ("not_before", "priority", "budget_at", "variant"):
            batch.drop_column(column)
    with op.batch_alter_table("contacts") as batch:
        for column in ("country", "locale", "timezone"):
            batch.drop_column(column)
    with op.batch_alter_table("customers") as batch:
        for column in ("locale", "country"):
            batch.drop_column(column)
