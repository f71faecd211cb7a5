"""Triggers: who gets enrolled, when.

- ``on_event``: `EventRouter.handle` stores each event once, signals the customer's running
  enrollments (milestones, goal, exit) and starts the playbooks the event triggers.
- ``on_date`` and ``schedule``: a Temporal Schedule runs a sweep every hour; for each
  customer whose cycle is due (in the customer's own calendar) the sweep enrolls them with
  the cycle as part of the enrollment ID, so retries and catch-up after downtime never
  enroll anyone twice for the same cycle.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from engine.context import decide
from engine.enrollment import enroll
from engine.errors import AlreadyEnrolled
from engine.events import Ingested, ingest_event
from engine.messages import EventSignal
from engine.plan import CompiledPlan, MilestonePlan, TriggerPlan
from engine.sendwindow import zone
from engine.store.models import Customer, Enrollment

log = logging.getLogger(__name__)
CATCH_UP = timedelta(days=7)


def period(every: str, today: date) -> tuple[date, date, str]:
    """(first day, last day, cycle key) of the period of ``every`` containing ``today``."""
    if every == "day":
        return today, today, today.isoformat()
    if every == "week":
        start = today - timedelta(days=today.weekday())
        iso = today.isocalendar()
        return start, start + timedelta(days=6), f"{iso.year}-W{iso.week:02d}"
    if every == "month":
        start = today.replace(day=1)
        nxt = (start + timedelta(days=32)).replace(day=1)
        return start, nxt - timedelta(days=1), f"{today:%Y-%m}"
    if every == "quarter":
        q = (today.month - 1) // 3
        start = date(today.year, 3 * q + 1, 1)
        nxt = date(today.year + (q == 3), (3 * q + 3) % 12 + 1, 1)
        return start, nxt - timedelta(days=1), f"{today.year}-Q{q + 1}"
    start = date(today.year, 1, 1)
    return start, date(today.year, 12, 31), str(today.year)


def due_cycle(trigger: TriggerPlan, today: date, date_value: date | None = None) -> str | None:
    """The cycle key if a date or schedule trigger is due on ``today`` (customer's calendar).

    A trigger stays due for a while after its day (`CATCH_UP` for dates, the rest of the
    period for schedules), so a sweep missed during downtime still enrolls.
    """
    if trigger.kind == "date":
        if date_value is None:
            return None
        return date_value.isoformat() if date_value <= today <= date_value + CATCH_UP else None
    if trigger.kind == "schedule" and trigger.every:
        first, last, key = period(trigger.every, today)
        if trigger.before_end_seconds is not None:
            opens = last - timedelta(seconds=trigger.before_end_seconds) + timedelta(days=1)
        else:
            opens = first + timedelta(seconds=trigger.after_start_seconds or 0)
        return key if max(first, opens) <= today <= last else None
    return None


@dataclass
class RoutedEvent:
    """The answer to one posted event."""

    id: str
    status: str  # accepted | duplicate | unknown_customer
    signalled: list[str] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class EventRouter:
    """Stores events and routes them to enrollments and triggers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        plans: dict[str, CompiledPlan],
        milestones: dict[str, MilestonePlan],
        task_queue: str,
        use_search_attributes: bool = True,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.plans = plans
        self.milestones = milestones
        self.task_queue = task_queue
        self.use_search_attributes = use_search_attributes

    async def handle(
        self,
        event_id: str,
        customer_id: str,
        name: str,
        at: datetime | None,
        properties: dict[str, Any],
    ) -> RoutedEvent:
        at = at or datetime.now(UTC)
        # The store is blocking (SQLAlchemy): in a thread, so a wait for SQLite's writer
        # lock does not stall every other request on the event loop.
        ingested = await asyncio.to_thread(
            self._ingest, event_id, customer_id, name, at, properties
        )
        if not ingested.known_customer:
            return RoutedEvent(
                event_id,
                "unknown_customer",
                notes=[f"no customer '{customer_id}'; the event is stored"],
            )
        if not ingested.new:
            return RoutedEvent(event_id, "duplicate", notes=["already received; ignored"])
        routed = RoutedEvent(event_id, "accepted")
        signal = EventSignal(id=event_id, name=name, at=at, properties=properties)
        for workflow_id in ingested.enrollments:
            try:
                await self.client.get_workflow_handle(workflow_id).signal("event", signal)
                routed.signalled.append(workflow_id)
            except RPCError as exc:
                routed.notes.append(f"{workflow_id}: not signalled ({exc.message})")
        for plan in self.plans.values():
            trig = plan.trigger
            if trig is None or trig.kind != "event" or trig.event != name:
                continue
            await self._trigger(plan, customer_id, signal, routed)
        return routed

    def _ingest(
        self,
        event_id: str,
        customer_id: str,
        name: str,
        at: datetime,
        properties: dict[str, Any],
    ) -> Ingested:
        with self.sessions.begin() as session:
            return ingest_event(
                session,
                event_id=event_id,
                customer_id=customer_id,
                name=name,
                at=at,
                properties=properties,
                milestones=self.milestones,
            )

    def _why_not_enroll(
        self, plan: CompiledPlan, customer_id: str, signal: EventSignal
    ) -> str | None:
        """Why the event's trigger does not enroll the customer, or None if it does."""
        assert plan.trigger is not None
        with self.sessions() as session:
            if plan.trigger.condition:
                _, _, values, errors = decide(
                    session,
                    customer_id,
                    plan.playbook,
                    [plan.trigger.condition],
                    datetime.now(UTC),
                    signal,
                )
                if values[0] is not True:
                    return errors[0] or f"{plan.trigger.condition} is false"
            if not reenroll_allowed(session, plan, customer_id):
                return "reenroll gap"
        return None

    async def _trigger(
        self, plan: CompiledPlan, customer_id: str, signal: EventSignal, routed: RoutedEvent
    ) -> None:
        why = await asyncio.to_thread(self._why_not_enroll, plan, customer_id, signal)
        if why is not None:
            routed.notes.append(f"{plan.playbook}: not enrolled ({why})")
            return
        try:
            workflow_id = await enroll(
                self.client,
                plan,
                customer_id,
                task_queue=self.task_queue,
                trigger_event=signal,
                use_search_attributes=self.use_search_attributes,
            )
            routed.enrolled.append(workflow_id)
        except AlreadyEnrolled as exc:
            routed.notes.append(f"{plan.playbook}: {exc}")


def reenroll_allowed(session: Session, plan: CompiledPlan, customer_id: str) -> bool:
    """For ``reenroll: <gap>``: the last enrollment ended at least that long ago."""
    if plan.reenroll != "after" or not plan.reenroll_after_seconds:
        return True
    last = session.scalars(
        select(Enrollment)
        .where(Enrollment.playbook_id == plan.playbook, Enrollment.customer_id == customer_id)
        .order_by(Enrollment.started_at.desc())
    ).first()
    if last is None:
        return True
    if last.ended_at is None:
        return False
    return datetime.now(UTC) - last.ended_at >= timedelta(seconds=plan.reenroll_after_seconds)


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
        exprs = [e for e in (trig.date, trig.condition) if e]
        with sessions() as session:
            _, _, values, _ = decide(session, customer_id, plan.playbook, exprs, now)
        date_value = None
        if trig.date:
            raw = values.pop(0) if values else None
            date_value = date.fromisoformat(raw[:10]) if isinstance(raw, str) else None
        if trig.condition and (not values or values[0] is not True):
            continue
        cycle = due_cycle(trig, today, date_value)
        if cycle is None:
            continue
        try:
            started.append(
                await enroll(
                    client,
                    plan,
                    customer_id,
                    task_queue=task_queue,
                    cycle_key=cycle,
                    use_search_attributes=use_search_attributes,
                )
            )
        except AlreadyEnrolled:
            continue
    return started
