"""The date and schedule trigger sweep: enroll every customer whose cycle is due.

A Temporal Schedule per date- or schedule-triggered playbook (`engine.client.registration`)
runs `TriggerSweepWorkflow` every hour, whose activity (`activities/sweep.py`) calls
`sweep`. Whether a cycle is due is calendar math in the customer's own time zone
(`engine.language.calendar`); the cycle is part of the enrollment ID, so retries and
catch-up after downtime never enroll anyone twice for the same cycle.

A customer whose trigger date has passed (imported mid-cycle, or the playbook deployed after
it) enrolls late as the trigger's `late` policy allows, and the enrollment carries how late
(`EnrollmentDates`). A customer with a running enrollment in the playbook is not enrolled
again: a moved anchor date gives a new cycle key while the old cycle still runs (it follows
the move, or ends when the move starts a new cycle).
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.enrollment import enroll, reenroll_allowed
from engine.errors import AlreadyEnrolled
from engine.language.calendar import due_cycle
from engine.language.plan import CompiledPlan
from engine.language.sendwindow import zone
from engine.messages import EnrollmentDates
from engine.statuses import EnrollmentStatus
from engine.store.context import decide
from engine.store.models import Customer, Enrollment


async def sweep(
    sessions: sessionmaker[Session],
    client: Client,
    plan: CompiledPlan,
    task_queue: str,
    now: datetime,
    use_search_attributes: bool = True,
) -> list[str]:
    """Enroll every customer whose date or schedule cycle is due; returns the new IDs."""
    trig = plan.trigger
    if trig is None or trig.kind not in ("date", "schedule"):
        return []
    started: list[str] = []
    with sessions() as session:
        customers = session.execute(
            select(Customer.id, Customer.timezone).order_by(Customer.id)
        ).all()
    for customer_id, timezone in customers:
        today = now.astimezone(zone(timezone)).date()
        anchor_expr = trig.late.until if trig.late else None
        exprs = [e for e in (trig.date, anchor_expr, trig.condition) if e]
        with sessions() as session:
            _, _, values, _ = decide(session, customer_id, plan.playbook, exprs, now)
        date_value = _date(values.pop(0) if trig.date and values else None)
        anchor = _date(values.pop(0) if anchor_expr and values else None)
        if trig.condition and (not values or values[0] is not True):
            continue
        cycle = due_cycle(trig, today, date_value, anchor)
        if cycle is None:
            continue
        with sessions() as session:
            if not reenroll_allowed(session, plan, customer_id, cycle):
                continue
            if trig.kind == "date" and _running(session, plan.playbook, customer_id):
                continue
        dates = None
        if date_value is not None:
            late_days = (today - date_value).days
            dates = EnrollmentDates(
                trigger_date=date_value, anchor_date=anchor, late_days=late_days
            )
        try:
            started.append(
                await enroll(
                    client,
                    plan,
                    customer_id,
                    task_queue=task_queue,
                    cycle_key=cycle,
                    use_search_attributes=use_search_attributes,
                    dates=dates,
                )
            )
        except AlreadyEnrolled:
            continue
    return started


def _date(raw: object) -> date | None:
    """An expression's date value (ISO text from `decide`), or None."""
    return date.fromisoformat(raw[:10]) if isinstance(raw, str) else None


def _running(session: Session, playbook: str, customer_id: str) -> bool:
    """Whether the customer has a running enrollment in the playbook (any cycle)."""
    stmt = select(Enrollment.workflow_id).where(
        Enrollment.playbook_id == playbook,
        Enrollment.customer_id == customer_id,
        Enrollment.status == EnrollmentStatus.RUNNING,
    )
    return session.execute(stmt.limit(1)).first() is not None
