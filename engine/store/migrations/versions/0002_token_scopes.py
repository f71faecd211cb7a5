"""Scoped, expiring, revocable API tokens.

Revision ID: 0002_token_scopes
Revises: 0001
Create Date: 2026-12-03

Until this revision every API token could do everything. Tokens that exist when it runs
get the scopes ``ingest`` and ``operate`` (events, customers, tasks, enrollments: what API
integrations use), not ``admin``: managing the team and tokens through the API needs a new
token created with ``--scope admin``. They keep no expiry; ``playbook token list`` shows them.
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002_token_scopes"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EXISTING_TOKENS_SCOPES = ["ingest", "operate"]


def _json() -> sa.types.TypeEngine[Any]:
    """A JSON document: JSONB on PostgreSQL, JSON text elsewhere."""
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    """Add scopes (filled for existing tokens), creator, expiry and revocation."""
    op.add_column("api_tokens", sa.Column("scopes", _json(), nullable=True))
    op.add_column("api_tokens", sa.Column("created_by", sa.String(length=255), nullable=True))
    op.add_column("api_tokens", sa.Column("expires_at", _ts(), nullable=True))
    op.add_column("api_tokens", sa.Column("revoked_at", _ts(), nullable=True))
    # A literal (not a bound JSON value) so that offline `--sql` mode can render it.
    op.execute(f"UPDATE api_tokens SET scopes = '{json.dumps(EXISTING_TOKENS_SCOPES)}'")
    with op.batch_alter_table("api_tokens") as batch:
        batch.alter_column("scopes", existing_type=_json(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        for column in ("revoked_at", "expires_at", "created_by", "scopes"):
            batch.drop_column(column)
