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
from typing import Any

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
from engine.store.context import all_customer_snapshots, decide_snapshot
from engine.store.models import Enrollment


async def sweep(
    sessions: sessionmaker[Session],
    client: Client,
    plan: CompiledPlan,
    task_queue: str,
    now: datetime,
    use_search_attributes: bool = True,
    clock_offset_seconds: float = 0.0,
    customers: list[tuple[str, str, dict[str, Any]]] | None = None,
) -> list[str]:
    """Enroll every customer whose date or schedule cycle is due at ``now``; returns the
    new IDs. ``clock_offset_seconds`` is the simulator's shifted clock (zero live);
    ``customers`` the book's snapshots (`all_customer_snapshots`) when the caller has read
    them for several playbooks at once."""
    trig = plan.trigger
    if trig is None or trig.kind not in ("date", "schedule"):
        return []
    started: list[str] = []
    with sessions() as session:
        if customers is None:
            customers = all_customer_snapshots(session)
        # One read for the whole book: a customer inside its late window is due every day
        # while its run goes on, and would otherwise cost two reads a sweep.
        running = _running_customers(session, plan.playbook) if trig.kind == "date" else set()
    for customer_id, timezone, snapshot in customers:
        today = now.astimezone(zone(timezone)).date()
        if trig.kind == "schedule" and due_cycle(trig, today) is None:
            continue  # outside the period's window: no need to evaluate anything
        date_value = None
        if trig.date:
            # The trigger date alone tells whether a date cycle can be due: most of a book
            # is weeks or months before it, and needs nothing else evaluated.
            [raw], _ = decide_snapshot(snapshot, plan.playbook, [trig.date], now)
            date_value = _date(raw)
            if date_value is None or date_value > today or customer_id in running:
                continue
        anchor_expr = trig.late.until if trig.late else None
        exprs = [e for e in (anchor_expr, trig.condition) if e]
        values, _ = decide_snapshot(snapshot, plan.playbook, exprs, now) if exprs else ([], [])
        anchor = _date(values.pop(0) if anchor_expr and values else None)
        if trig.condition and (not values or values[0] is not True):
            continue
        cycle = due_cycle(trig, today, date_value, anchor)
        if cycle is None:
            continue
        with sessions() as session:
            if not reenroll_allowed(session, plan, customer_id, cycle, now=now):
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
                    started_at=now,
                    clock_offset_seconds=clock_offset_seconds,
                    dates=dates,
                )
            )
        except AlreadyEnrolled:
            continue
    return started


def _date(raw: object) -> date | None:
    """An expression's date value (ISO text from `decide`), or None."""
    return date.fromisoformat(raw[:10]) if isinstance(raw, str) else None


def _running_customers(session: Session, playbook: str) -> set[str]:
    """The customers with a running enrollment in the playbook (any cycle)."""
    stmt = select(Enrollment.customer_id).where(
        Enrollment.playbook_id == playbook,
        Enrollment.status == EnrollmentStatus.RUNNING,
    )
    return set(session.scalars(stmt.distinct()))
