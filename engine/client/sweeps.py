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

A sweep reads the book in pages of `SWEEP_PAGE_SIZE` customers by id (keyset pagination),
so its memory is one page whatever the book's size, and reports each page's last id
(``on_page``: the activity heartbeats it, and a retried activity resumes after it). A date
trigger on a stored date (``customer.renewal_date`` or ``customer.attributes.NAME``, plus
or minus days or weeks) only reads the customers whose date is near enough to be due
(`due_field_window`); a schedule outside its window in every time zone reads nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.enrollment import enroll, reenroll_allowed
from engine.errors import AlreadyEnrolled
from engine.language.calendar import due_cycle, due_field_window
from engine.language.plan import CompiledPlan, TriggerPlan
from engine.language.sendwindow import zone
from engine.messages import EnrollmentDates
from engine.statuses import EnrollmentStatus
from engine.store.context import customer_snapshots_page, decide_snapshot
from engine.store.models import Customer, Enrollment

# Customers read per query: large enough that the per-page queries cost little, small
# enough that a page's snapshots take a few MB.
SWEEP_PAGE_SIZE = 500

Snapshots = Sequence[tuple[str, str, dict[str, Any]]]


async def sweep(
    sessions: sessionmaker[Session],
    client: Client,
    plan: CompiledPlan,
    task_queue: str,
    now: datetime,
    use_search_attributes: bool = True,
    clock_offset_seconds: float = 0.0,
    customers: Snapshots | None = None,
    *,
    after: str | None = None,
    page_size: int = SWEEP_PAGE_SIZE,
    on_page: Callable[[str], None] | None = None,
) -> list[str]:
    """Enroll every customer whose date or schedule cycle is due at ``now``; returns the
    new IDs. ``clock_offset_seconds`` is the simulator's shifted clock (zero live);
    ``customers`` the book's snapshots (`all_customer_snapshots`) when the caller has read
    them for several playbooks at once. Otherwise the store is read in pages of
    ``page_size`` customers by id, starting after the id ``after``; ``on_page`` is called
    with each page's last id once the page's enrollments have started."""
    trig = plan.trigger
    if trig is None or trig.kind not in ("date", "schedule"):
        return []
    if trig.kind == "schedule" and not _open_somewhere(trig, now):
        return []

    async def enroll_due(page: Snapshots, running: set[str]) -> list[str]:
        return await _enroll_due(
            sessions, client, plan, trig, page, running, task_queue, now,
            use_search_attributes, clock_offset_seconds,
        )  # fmt: skip

    if customers is not None:
        with sessions() as session:
            running = _running_customers(session, plan.playbook) if trig.kind == "date" else set()
        return await enroll_due(customers, running)
    where = _prefilter(trig, now)
    started: list[str] = []
    while True:
        with sessions() as session:
            page = customer_snapshots_page(session, after, page_size, *where)
            ids = [customer_id for customer_id, _, _ in page]
            # One read per page: a customer inside its late window is due every day while
            # its run goes on, and would otherwise cost two reads a sweep.
            running = (
                _running_customers(session, plan.playbook, ids)
                if trig.kind == "date" and ids
                else set()
            )
        if not page:
            return started
        started += await enroll_due(page, running)
        after = ids[-1]
        if on_page is not None:
            on_page(after)
        if len(page) < page_size:
            return started


async def _enroll_due(
    sessions: sessionmaker[Session],
    client: Client,
    plan: CompiledPlan,
    trig: TriggerPlan,
    customers: Snapshots,
    running: set[str],
    task_queue: str,
    now: datetime,
    use_search_attributes: bool,
    clock_offset_seconds: float,
) -> list[str]:
    """Enroll those of ``customers`` whose cycle is due, one after the other (a sweep that
    finds thousands due starts them at the pace Temporal takes them, not all at once)."""
    started: list[str] = []
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


def _open_somewhere(trigger: TriggerPlan, now: datetime) -> bool:
    """Whether a schedule's window is open on ``now``'s day in some time zone (every zone's
    day is within one of UTC's): when it is not, the sweep need not read the book."""
    utc_today = now.astimezone(UTC).date()
    return any(
        due_cycle(trigger, utc_today + timedelta(days=shift)) is not None for shift in (-1, 0, 1)
    )


def _prefilter(trigger: TriggerPlan, now: datetime) -> list[ColumnElement[bool]]:
    """The query conditions that keep only customers whose date trigger may be due at
    ``now`` (`due_field_window`), or none when the trigger date is not a stored date.

    An attribute is compared as ISO text (how dates are stored in JSON), so a value in
    another form is never read by the sweep, as ``date()`` would refuse it anyway.
    """
    window = due_field_window(trigger, now.astimezone(UTC).date())
    if window is None:
        return []
    field, first, last = window
    if field == "renewal_date":
        return [Customer.renewal_date.between(first, last)]
    value = Customer.attributes[field.removeprefix("attributes.")].as_string()
    return [value >= first.isoformat(), value < (last + timedelta(days=1)).isoformat()]


def _date(raw: object) -> date | None:
    """An expression's date value (ISO text from `decide`), or None."""
    return date.fromisoformat(raw[:10]) if isinstance(raw, str) else None


def _running_customers(
    session: Session, playbook: str, customers: Sequence[str] | None = None
) -> set[str]:
    """The customers (of ``customers``, or all) with a running enrollment in the playbook
    (any cycle)."""
    stmt = select(Enrollment.customer_id).where(
        Enrollment.playbook_id == playbook,
        Enrollment.status == EnrollmentStatus.RUNNING,
    )
    if customers is not None:
        stmt = stmt.where(Enrollment.customer_id.in_(customers))
    return set(session.scalars(stmt.distinct()))
