"""``on_change`` triggers: enroll when a condition over customer data becomes true.

A condition such as ``health.score < 40`` is judged twice around a change (a recomputed
health score, a saved customer): it fires only when it was false before and is true after,
so a customer who stays red is not enrolled again and again. ``cooldown`` adds a gap from
the last enrollment's start, so one who bounces around 40 is not either; the playbook's
``reenroll`` rules apply as for every trigger. Callers take the snapshot before the change
(`snapshot_before`) and call `emit_change` after it, which also tells the customer's running
enrollments (the ``customer_changed`` signal), so a change can end their waits, goals and
exits (`exit: if`, `goal: when`, `wait_for: when`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from engine.client.enrollment import enroll, reenroll_refusal
from engine.client.playbook import EnrollmentHandle
from engine.errors import AlreadyEnrolled
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan
from engine.messages import CustomerChanged
from engine.statuses import EnrollmentStatus
from engine.store import health, repository
from engine.store.context import customer_snapshot, decide_snapshot
from engine.store.models import Enrollment


@dataclass(frozen=True)
class ChangeTarget:
    """Where a change of customer data goes: the Temporal ``client`` that tells running
    enrollments and starts the ``on_change`` ones (on ``task_queue``, with search
    attributes or not, and the simulation's ``clock_offset_seconds``), and the store the
    customer's data is read from."""

    client: Client
    sessions: sessionmaker[Session]
    task_queue: str
    use_search_attributes: bool = True
    clock_offset_seconds: float = 0.0


def change_plans(plans: Mapping[str, CompiledPlan]) -> list[CompiledPlan]:
    """The plans with an ``on_change`` trigger, by id."""
    return [
        plan
        for _, plan in sorted(plans.items())
        if plan.trigger is not None and plan.trigger.kind == "change"
    ]


def snapshot_before(
    sessions: sessionmaker[Session], customer_id: str, now: datetime
) -> dict[str, Any] | None:
    """The customer's data as conditions see it, before a change (None if unknown)."""
    with sessions() as session:
        return snapshot_in(session, customer_id, now)


def snapshot_in(session: Session, customer_id: str, now: datetime) -> dict[str, Any] | None:
    """`snapshot_before` in the caller's session (the daily recompute's page, before it
    writes)."""
    customer = repository.get_customer(session, customer_id)
    return None if customer is None else customer_snapshot(session, customer, now.date())


def change_refusal(
    sessions: sessionmaker[Session],
    plan: CompiledPlan,
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
) -> str | None:
    """Why the customer is not enrolled in ``plan`` on this change (its condition was already
    true, is false, the trigger's ``if``, the cooldown, ``reenroll``), or None if it is."""
    trigger = plan.trigger
    assert trigger is not None and trigger.change is not None
    conditions = [trigger.change, *([trigger.condition] if trigger.condition else [])]
    with sessions() as session:
        customer = repository.get_customer(session, customer_id)
        if customer is None:
            return f"no customer '{customer_id}'"
        after = customer_snapshot(session, customer, now.date())
        values, errors = decide_snapshot(after, plan.playbook, conditions, now)
        if values[0] is not True:
            return errors[0] or f"{trigger.change} is not true"
        if before is not None:
            was, _ = decide_snapshot(before, plan.playbook, [trigger.change], now)
            if was[0] is True:
                return f"{trigger.change} was already true"
        if len(values) > 1 and values[1] is not True:
            return errors[1] or f"trigger condition {trigger.condition} is false"
        if trigger.cooldown_seconds:
            last = session.scalar(
                select(Enrollment.started_at)
                .where(
                    Enrollment.playbook_id == plan.playbook,
                    Enrollment.customer_id == customer_id,
                )
                .order_by(Enrollment.started_at.desc())
                .limit(1)
            )
            if last is not None and now < last + timedelta(seconds=trigger.cooldown_seconds):
                return f"cooldown: last enrolled {last:%Y-%m-%d %H:%M} UTC"
        return reenroll_refusal(session, plan, customer_id, now=now)


async def fire_changes(
    target: ChangeTarget,
    plans: Mapping[str, CompiledPlan],
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
) -> tuple[list[str], list[str]]:
    """Enroll the customer in each ``on_change`` playbook whose condition just became true;
    (workflow ids started, notes on those that did not)."""
    started: list[str] = []
    notes: list[str] = []
    for plan in change_plans(plans):
        why = await asyncio.to_thread(
            change_refusal, target.sessions, plan, customer_id, before, now
        )
        if why is not None:
            notes.append(f"{plan.playbook}: not enrolled ({why})")
            continue
        try:
            started.append(
                await enroll(
                    target.client,
                    plan,
                    customer_id,
                    task_queue=target.task_queue,
                    use_search_attributes=target.use_search_attributes,
                    started_at=now,
                    clock_offset_seconds=target.clock_offset_seconds,
                )
            )
        except AlreadyEnrolled as exc:
            notes.append(f"{plan.playbook}: not enrolled ({exc})")
    return started, notes


def changed_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """What a change moved, as ``customer_changed`` names it: the customer's own fields
    (``segment``, ``attributes``, ``renewal_date``...), ``health`` (score, band, measures or
    risk signals), ``milestones`` and ``owner``. None for a customer that did not exist
    before."""
    if before is None or after is None:
        return []
    was, now = before.get("customer", {}), after.get("customer", {})
    fields = [name for name in now if name != "health_score" and was.get(name) != now.get(name)]
    health_was, health_now = before.get("health", {}), after.get("health", {})
    if any(
        health_was.get(name) != health_now.get(name)
        for name in ("score", "band", "known", "measures", "signals")
    ):
        fields.append("health")
    fields += [name for name in ("milestones", "owner") if before.get(name) != after.get(name)]
    return fields


def running_enrollments(session: Session, customer_id: str) -> list[str]:
    """The ids of the customer's running enrollments, in any playbook."""
    stmt = select(Enrollment.workflow_id).where(
        Enrollment.customer_id == customer_id, Enrollment.status == EnrollmentStatus.RUNNING
    )
    return list(session.scalars(stmt.order_by(Enrollment.workflow_id)))


async def tell_running(
    client: Client, sessions: sessionmaker[Session], customer_id: str, fields: Iterable[str]
) -> list[str]:
    """Signal ``customer_changed`` (with ``fields``) to each running enrollment of the
    customer; the ids of those told. Nothing when no field changed. A row whose run has
    ended in Temporal (the row not updated yet, or no workflow behind it) is skipped."""
    changed = list(fields)
    if not changed:
        return []
    with sessions() as session:
        ids = running_enrollments(session, customer_id)
    change = CustomerChanged(customer_id=customer_id, fields=changed)
    told: list[str] = []
    for enrollment_id in ids:
        try:
            await EnrollmentHandle.get(client, enrollment_id).customer_changed(change)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            continue
        told.append(enrollment_id)
    return told


@dataclass
class Emitted:
    """What a change did: the fields it moved, the running enrollments told of it, the
    ``on_change`` enrollments it started and notes on the playbooks it did not start."""

    fields: list[str] = field(default_factory=list)
    signalled: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


async def emit_change(
    target: ChangeTarget,
    plans: Mapping[str, CompiledPlan],
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
    told: Iterable[str] = (),
) -> Emitted:
    """After a change of the customer's data (``before``: `snapshot_before`): tell its
    running enrollments what moved (except the ``told`` fields, signalled already), then
    enroll it in the ``on_change`` playbooks the change made true. Raises Temporal's
    `RPCError` if Temporal cannot be reached (the data is saved already)."""
    after = await asyncio.to_thread(snapshot_before, target.sessions, customer_id, now)
    emitted = Emitted(fields=changed_fields(before, after))
    already = set(told)
    if any(name not in already for name in emitted.fields):
        emitted.signalled = await tell_running(
            target.client, target.sessions, customer_id, emitted.fields
        )
    if change_plans(plans):
        emitted.started, emitted.notes = await fire_changes(target, plans, customer_id, before, now)
    return emitted


async def rescore_pages(
    target: ChangeTarget, card: Scorecard, plans: Mapping[str, CompiledPlan], now: datetime
) -> AsyncIterator[list[tuple[health.Recorded, list[str]]]]:
    """The daily recompute, a page of customers at a time (`health.recompute_book`: one
    transaction per page): every customer's health computed and recorded at ``now``, then
    each customer whose score, band or signals moved has its running enrollments told (a
    ``goal: when``, ``exit: if`` or ``wait_for: when`` over health is judged again) and the
    ``on_change`` playbooks judged; per page, (what was recorded, the workflow ids it
    started) per customer. The page is told and fired before the next one is read."""
    changing = {p.playbook: p for p in change_plans(plans)}

    def before(session: Session, customer_id: str) -> dict[str, Any] | None:
        return snapshot_in(session, customer_id, now)

    # A moving customer's data is read as it was, in its page's transaction before the
    # page is written, only when an on_change playbook judges it.
    pages = health.recompute_book(target.sessions, card, now, before=before if changing else None)
    while (recorded_page := await asyncio.to_thread(next, pages, None)) is not None:
        out: list[tuple[health.Recorded, list[str]]] = []
        for recorded in recorded_page:
            started: list[str] = []
            if recorded.moved:
                await tell_running(target.client, target.sessions, recorded.customer_id, ["health"])
                if changing:
                    started, _ = await fire_changes(
                        target, changing, recorded.customer_id, recorded.before, now
                    )
            out.append((recorded, started))
        yield out


async def rescore_all(
    target: ChangeTarget, card: Scorecard, plans: Mapping[str, CompiledPlan], now: datetime
) -> list[tuple[health.Recorded, list[str]]]:
    """`rescore_pages`, every page in one list (the simulations, whose books are small)."""
    pages = rescore_pages(target, card, plans, now)
    return [done async for page in pages for done in page]
