"""What the reports read, written once: email engagement and the steps enrollments entered.

- `record_engagement`: one SendGrid engagement event of an outbox row, kept in
  `engagement_events` and rolled up into `email_engagement` (first-seen time per kind, so
  out-of-order events leave the earliest time; counts of opens and clicks). The webhook has
  already deduplicated the event by its id; the event's own insert is keyed by it too.
- `record_step_visits`: the steps an enrollment entered, reported by the interpreter
  through the `record_enrollment` activity; keyed by run, step and visit, so a retried
  activity adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, Executable, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from engine.store.models import EmailEngagement, EngagementEvent, StepVisit
from engine.store.repository import dialect_insert

# SendGrid event type -> the kind kept, and the `email_engagement` column of its first time.
KINDS = {
    "delivered": "delivered",
    "open": "open",
    "click": "click",
    "bounce": "bounce",
    "spamreport": "spamreport",
    "unsubscribe": "unsubscribe",
    "group_unsubscribe": "unsubscribe",
}
FIRST_SEEN = {
    "delivered": "delivered_at",
    "open": "opened_at",
    "click": "clicked_at",
    "bounce": "bounced_at",
    "spamreport": "spam_reported_at",
    "unsubscribe": "unsubscribed_at",
}


def record_engagement(
    session: Session,
    *,
    event_id: str,
    outbox_id: int,
    sendgrid_event: str,
    at: datetime,
    url: str | None = None,
) -> bool:
    """Keep one engagement event of an outbox row; False if it is not a kept kind or was
    already kept. A bounce of a blocked message counts like any other bounce here."""
    kind = KINDS.get(sendgrid_event)
    if kind is None:
        return False
    inserted = session.execute(
        dialect_insert(session, EngagementEvent)
        .values(id=event_id, outbox_id=outbox_id, kind=kind, at=at, url=url)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(EngagementEvent.id)
    ).first()
    if inserted is None:
        return False
    column = FIRST_SEEN[kind]
    values: dict[str, Any] = {
        "outbox_id": outbox_id,
        column: at,
        "opens": int(kind == "open"),
        "clicks": int(kind == "click"),
    }
    stmt = dialect_insert(session, EmailEngagement).values(**values)
    table = EmailEngagement.__table__.c
    current, new = table[column], stmt.excluded[column]
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=["outbox_id"],
            set_={
                # The earliest time wins: a late-arriving earlier event moves it back.
                column: case((current.is_(None), new), (new < current, new), else_=current),
                "opens": table.opens + stmt.excluded.opens,
                "clicks": table.clicks + stmt.excluded.clicks,
            },
        )
    )
    return True


_VISIT_STATEMENTS: dict[str, tuple[Executable, Executable]] = {}


def _visit_statements(session: Session) -> tuple[Executable, Executable]:
    """`record_step_visits`' two statements for the session's dialect, built once, their
    values given when they run: the insert of new visits (which returns the ids it
    stored), and the update that marks the run's newest visit as its latest.

    The worker runs them at every step, under SQLite inside the writer lock; built on
    each call (a multi-row ``VALUES`` is compiled anew every time), they took longer than
    the statements themselves (bench/RESULTS.md, "The worker's longest hold of the
    writer lock")."""
    dialect = session.get_bind().dialect.name
    cached = _VISIT_STATEMENTS.get(dialect)
    if cached is None:
        # Not named "run_key": an UPDATE keeps its table's column names for SET values.
        run_key: BindParameter[str] = bindparam("visits_run_key")
        newest = (
            select(StepVisit.id)
            .where(StepVisit.run_key == run_key)
            .order_by(StepVisit.entered_at.desc(), StepVisit.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        cached = _VISIT_STATEMENTS[dialect] = (
            dialect_insert(session, StepVisit)
            .on_conflict_do_nothing(index_elements=["run_key", "step_id", "visit"])
            .returning(StepVisit.id),
            # One statement (under SQLite the writer lock is held until the commit): the
            # newest becomes latest, any other that was latest no longer is; a retried call
            # finds the same newest.
            update(StepVisit)
            .where(
                StepVisit.run_key == run_key,
                or_(StepVisit.latest.is_(True), StepVisit.id == newest),
            )
            .values(latest=StepVisit.id == newest),
        )
    return cached


def record_step_visits(
    session: Session,
    *,
    run_key: str,
    workflow_id: str,
    playbook_id: str,
    version: str,
    customer_id: str,
    visits: Iterable[tuple[str, int, datetime]],
) -> int:
    """Keep the (step, visit, entered_at) entries of one run; returns how many were new."""
    rows = [
        {
            "run_key": run_key,
            "workflow_id": workflow_id,
            "playbook_id": playbook_id,
            "version": version,
            "customer_id": customer_id,
            "step_id": step,
            "visit": visit,
            "entered_at": at,
            "latest": False,
        }
        for step, visit, at in visits
    ]
    if not rows:
        return 0
    insert_visits, mark_latest = _visit_statements(session)
    # On the session's connection, past the ORM's execute: nothing here is read back into
    # the identity map (as `repository.record_milestones`).
    connection = session.connection()
    added = len(connection.execute(insert_visits, rows).all())
    connection.execute(mark_latest, {"visits_run_key": run_key})
    return added
