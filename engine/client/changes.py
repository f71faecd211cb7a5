"""``on_change`` triggers: enroll when a condition over customer data becomes true.

A condition such as ``health.score < 40`` is judged twice around a change (a recomputed
health score, a saved customer): it fires only when it was false before and is true after,
so a customer who stays red is not enrolled again and again. ``cooldown`` adds a gap from
the last enrollment's start, so one who bounces around 40 is not either; the playbook's
``reenroll`` rules apply as for every trigger. Callers take the snapshot before the change
(`snapshot_before`) and call `fire_changes` after it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.enrollment import enroll, reenroll_refusal
from engine.errors import AlreadyEnrolled
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan
from engine.store import health, repository
from engine.store.context import customer_snapshot, decide_snapshot
from engine.store.models import Enrollment


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
    client: Client,
    sessions: sessionmaker[Session],
    plans: Mapping[str, CompiledPlan],
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
    task_queue: str,
    use_search_attributes: bool = True,
    clock_offset_seconds: float = 0.0,
) -> tuple[list[str], list[str]]:
    """Enroll the customer in each ``on_change`` playbook whose condition just became true;
    (workflow ids started, notes on those that did not)."""
    started: list[str] = []
    notes: list[str] = []
    for plan in change_plans(plans):
        why = await asyncio.to_thread(change_refusal, sessions, plan, customer_id, before, now)
        if why is not None:
            notes.append(f"{plan.playbook}: not enrolled ({why})")
            continue
        try:
            started.append(
                await enroll(
                    client,
                    plan,
                    customer_id,
                    task_queue=task_queue,
                    use_search_attributes=use_search_attributes,
                    started_at=now,
                    clock_offset_seconds=clock_offset_seconds,
                )
            )
        except AlreadyEnrolled as exc:
            notes.append(f"{plan.playbook}: not enrolled ({exc})")
    return started, notes


async def rescore_all(
    client: Client,
    sessions: sessionmaker[Session],
    card: Scorecard,
    plans: Mapping[str, CompiledPlan],
    now: datetime,
    task_queue: str,
    use_search_attributes: bool = True,
    clock_offset_seconds: float = 0.0,
) -> list[tuple[health.Recorded, list[str]]]:
    """The daily recompute: every customer's health computed and recorded at ``now``, then
    the ``on_change`` playbooks judged for each customer whose score, band or signals moved;
    (what was recorded, the workflow ids it started) per customer. The daily Schedule's
    activity and the simulations both run it."""
    changing = {p.playbook: p for p in change_plans(plans)}

    def recompute() -> tuple[list[health.Recorded], dict[str, dict[str, Any] | None]]:
        # Scored first, recorded after the moving customers' data is read as it was.
        with sessions.begin() as session:
            scored = health.score_all(session, card, now)
            before = {
                s.customer.id: snapshot_before(sessions, s.customer.id, now)
                for s in scored
                if changing and s.moves
            }
            return health.record_all(session, scored, now), before

    recorded_all, before = await asyncio.to_thread(recompute)
    out: list[tuple[health.Recorded, list[str]]] = []
    for recorded in recorded_all:
        started: list[str] = []
        if changing and (recorded.changed or recorded.signals_changed):
            started, _ = await fire_changes(
                client,
                sessions,
                changing,
                recorded.customer_id,
                before.get(recorded.customer_id),
                now,
                task_queue,
                use_search_attributes,
                clock_offset_seconds,
            )
        out.append((recorded, started))
    return out
