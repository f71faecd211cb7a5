"""Revocable web sessions, login throttling and single-use login nonces.

Revision ID: 0003_sessions
Revises: 0001
Create Date: 2026-12-03

Adds `team_members.disabled_at` and the tables `web_sessions`, `login_throttles` and
`used_login_nonces` (see `engine/store/models.py` and `engine/store/logins.py`). Sessions
signed before this revision (the old stateless cookies) are not in `web_sessions`, so
everyone logs in again once after the upgrade.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_sessions"
down_revision: str | Sequence[str] | None = "0002_token_scopes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _ts() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("team_members") as batch:
        batch.add_column(sa.Column("disabled_at", _ts(), nullable=True))

    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("member_email", sa.String(length=320), nullable=False),
        sa.Column("created_at", _ts(), nullable=False),
        sa.Column("last_seen_at", _ts(), nullable=False),
        sa.Column("revoked_at", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
    )
    op.create_index(op.f("ix_web_sessions_member_email"), "web_sessions", ["member_email"])

    op.create_table(
        "login_throttles",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", _ts(), nullable=False),
        sa.Column("locked_until", _ts(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttles")),
    )

    op.create_table(
        "used_login_nonces",
        sa.Column("nonce_hash", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _ts(), nullable=False),
        sa.PrimaryKeyConstraint("nonce_hash", name=op.f("pk_used_login_nonces")),
    )
    op.create_index(op.f("ix_used_login_nonces_expires_at"), "used_login_nonces", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_used_login_nonces_expires_at"), table_name="used_login_nonces")
    op.drop_table("used_login_nonces")
    op.drop_table("login_throttles")
    op.drop_index(op.f("ix_web_sessions_member_email"), table_name="web_sessions")
    op.drop_table("web_sessions")
    with op.batch_alter_table("team_members") as batch:
        batch.drop_column("disabled_at")
