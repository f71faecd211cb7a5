"""Report indexes: the funnel, email and task reports aggregate over index scans.

Revision ID: 0011_report_indexes
Revises: 0010_ui
Create Date: 2026-12-03

The reports (`engine/services/reports/`) count in the database; these indexes hold what
their queries read, in the order they group by, so a year of 10,000 customers is counted
without reading table rows (issue 19's 500 ms a page):

- `step_visits`: first visits (``visit = 1``: the runs that reached a step) and latest
  visits (where runs left), by playbook, version and step, with the run key that joins
  them to their enrollment row;
- `enrollments`: runs per playbook and version by start (the funnel's "entered"), and
  the run under a workflow ID by start and end (an email's or task's version);
- `outbox`: the email report's groups (playbook, step, variant) with what it filters on.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011_report_indexes"
down_revision: str | Sequence[str] | None = "0010_ui"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES: list[tuple[str, str, list[str]]] = [
    (
        "ix_step_visits_first_visits",
        "step_visits",
        ["visit", "playbook_id", "version", "step_id", "run_key"],
    ),
    (
        "ix_step_visits_latest_visits",
        "step_visits",
        ["latest", "playbook_id", "version", "step_id", "run_key", "entered_at"],
    ),
    (
        "ix_enrollments_playbook_id_version_started_at",
        "enrollments",
        ["playbook_id", "version", "started_at"],
    ),
    (
        "ix_enrollments_workflow_id_started_at",
        "enrollments",
        ["workflow_id", "started_at", "ended_at", "version"],
    ),
    (
        "ix_outbox_report",
        "outbox",
        ["playbook_id", "step_id", "variant", "status", "created_at", "enrollment_id",
         "customer_id"],
    ),
]  # fmt: skip


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(op.f(name), table, columns)


def downgrade() -> None:
    for name, table, _ in reversed(INDEXES):
        op.drop_index(op.f(name), table_name=table)
