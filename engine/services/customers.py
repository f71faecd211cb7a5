"""Saving a customer from a CRM or an import, and telling its running enrollments.

A running ``wait: {until: customer.renewal_date - days(60)}`` depends on the customer's
data, and so does the cycle of a date-triggered enrollment. When a save changes a field a
date may be computed from (`DATE_FIELDS`), each running enrollment of the customer gets the
``customer_changed`` signal (`EnrollmentHandle.customer_changed`) and evaluates its dates
again: its wait follows the moved date, and a move into the next cycle ends the current one
(`workflows/interpreter.py`). The store is written first: a signal that fails leaves the
data saved, and the caller reports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from engine.client.changes import ChangeTarget, Emitted, change_plans, emit_change, tell_running
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan
from engine.messages import DATE_FIELDS
from engine.statuses import EnrollmentStatus
from engine.store import health, repository
from engine.store.models import Customer, Enrollment


def date_values(session: Session, customer_id: str) -> dict[str, Any] | None:
    """The customer's `DATE_FIELDS` as stored now, or None for an unknown customer."""
    customer = session.get(Customer, customer_id, populate_existing=True)
    if customer is None:
        return None
    return {name: getattr(customer, name) for name in DATE_FIELDS}


def changed_date_fields(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    """The `DATE_FIELDS` a save changed (none for a new customer: nothing runs for it yet)."""
    if before is None or after is None:
        return []
    return [name for name in DATE_FIELDS if before.get(name) != after.get(name)]


def save_customer(sessions: sessionmaker[Session], data: repository.CustomerData) -> list[str]:
    """Upsert the customer (and its contacts); returns the date fields the save changed."""
    with sessions.begin() as session:
        before = date_values(session, data.id)
        repository.upsert_customer(session, data)
        after = date_values(session, data.id)
    return changed_date_fields(before, after)


async def notify_changed(
    client: Client, sessions: sessionmaker[Session], customer_id: str, fields: Iterable[str]
) -> list[str]:
    """Signal ``customer_changed`` to each running enrollment of the customer; their ids.

    Does nothing when no date field changed. Raises Temporal's `RPCError` if Temporal
    cannot be reached (the data is saved already).
    """
    return await tell_running(client, sessions, customer_id, fields)


async def react_to_save(
    target: ChangeTarget,
    plans: Mapping[str, CompiledPlan],
    scorecard: Scorecard | None,
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
    told: Iterable[str] = (),
) -> tuple[list[str], list[str]]:
    """After a save: recompute the customer's health (its fields may be measured), tell its
    running enrollments what else moved (``told``: the date fields `notify_changed` sent
    already) and enroll it in the ``on_change`` playbooks the save made true; (started ids,
    notes).

    ``before`` is `engine.client.changes.snapshot_before`, taken before the save."""
    emitted = await _rescore_and_emit(target, plans, scorecard, customer_id, before, now, told)
    return emitted.started, emitted.notes


async def _rescore_and_emit(
    target: ChangeTarget,
    plans: Mapping[str, CompiledPlan],
    scorecard: Scorecard | None,
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
    told: Iterable[str],
) -> Emitted:
    if scorecard is not None:
        with target.sessions.begin() as session:
            health.recompute(session, scorecard, customer_id, now)
    return await emit_change(target, plans, customer_id, before, now, told=told)


async def notify_all_changed(
    client: Client, sessions: sessionmaker[Session], changes: dict[str, list[str]]
) -> list[str]:
    """`notify_changed` for each customer of an import; every enrollment signalled."""
    signalled: list[str] = []
    for customer_id, fields in changes.items():
        signalled += await notify_changed(client, sessions, customer_id, fields)
    return signalled


async def react_to_import(
    target: ChangeTarget,
    plans: Mapping[str, CompiledPlan],
    scorecard: Scorecard | None,
    befores: Mapping[str, dict[str, Any] | None],
    date_changes: Mapping[str, list[str]],
    now: datetime,
) -> tuple[list[str], list[str], list[str]]:
    """After an import, for each customer it saved, what an API save does: tell the
    running enrollments of moved dates, recompute health, tell them what else moved and
    enroll in the ``on_change`` playbooks made true; (signalled, started, notes)."""
    signalled: list[str] = []
    started: list[str] = []
    notes: list[str] = []
    for customer_id, before in befores.items():
        dates = date_changes.get(customer_id, [])
        signalled += await notify_changed(target.client, target.sessions, customer_id, dates)
        emitted = await _rescore_and_emit(target, plans, scorecard, customer_id, before, now, dates)
        signalled += [s for s in emitted.signalled if s not in signalled]
        started += emitted.started
        notes += [f"{customer_id}: {note}" for note in emitted.notes]
    return signalled, started, notes


def import_needs_temporal(
    sessions: sessionmaker[Session], plans: Mapping[str, CompiledPlan], customer_ids: Iterable[str]
) -> bool:
    """Whether `react_to_import` has anything to do: an ``on_change`` playbook is deployed, or
    an imported customer has a running enrollment to tell (else an import needs no Temporal)."""
    if change_plans(plans):
        return True
    ids = list(customer_ids)
    with sessions() as session:
        running = select(Enrollment.workflow_id).where(
            Enrollment.customer_id.in_(ids), Enrollment.status == EnrollmentStatus.RUNNING
        )
        return session.scalar(running.limit(1)) is not None
