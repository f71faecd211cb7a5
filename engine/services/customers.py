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

from engine.client.changes import change_plans, fire_changes
from engine.client.playbook import EnrollmentHandle
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan
from engine.messages import CustomerChanged
from engine.statuses import EnrollmentStatus
from engine.store import health, repository
from engine.store.models import Customer, Enrollment

# The customer fields a date in an expression can come from: the renewal date, custom
# attributes (a contract end, a go-live date) and the time zone a `wait: at` is read in.
DATE_FIELDS = ("renewal_date", "attributes", "timezone")


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


def running_enrollments(session: Session, customer_id: str) -> list[str]:
    """The ids of the customer's running enrollments, in any playbook."""
    stmt = select(Enrollment.workflow_id).where(
        Enrollment.customer_id == customer_id, Enrollment.status == EnrollmentStatus.RUNNING
    )
    return list(session.scalars(stmt.order_by(Enrollment.workflow_id)))


async def notify_changed(
    client: Client, sessions: sessionmaker[Session], customer_id: str, fields: Iterable[str]
) -> list[str]:
    """Signal ``customer_changed`` to each running enrollment of the customer; their ids.

    Does nothing when no date field changed. Raises Temporal's `RPCError` if Temporal
    cannot be reached (the data is saved already).
    """
    changed = list(fields)
    if not changed:
        return []
    with sessions() as session:
        ids = running_enrollments(session, customer_id)
    change = CustomerChanged(customer_id=customer_id, fields=changed)
    for enrollment_id in ids:
        await EnrollmentHandle.get(client, enrollment_id).customer_changed(change)
    return ids


async def react_to_save(
    client: Client,
    sessions: sessionmaker[Session],
    plans: Mapping[str, CompiledPlan],
    scorecard: Scorecard | None,
    customer_id: str,
    before: dict[str, Any] | None,
    now: datetime,
    task_queue: str,
    use_search_attributes: bool = True,
) -> tuple[list[str], list[str]]:
    """After a save: recompute the customer's health (its fields may be measured), then
    enroll it in the ``on_change`` playbooks the save made true; (started ids, notes).

    ``before`` is `engine.client.changes.snapshot_before`, taken before the save."""
    if scorecard is not None:
        with sessions.begin() as session:
            health.recompute(session, scorecard, customer_id, now)
    if not change_plans(plans):
        return [], []
    return await fire_changes(
        client,
        sessions,
        plans,
        customer_id,
        before,
        now,
        task_queue,
        use_search_attributes=use_search_attributes,
    )


async def notify_all_changed(
    client: Client, sessions: sessionmaker[Session], changes: dict[str, list[str]]
) -> list[str]:
    """`notify_changed` for each customer of an import; every enrollment signalled."""
    signalled: list[str] = []
    for customer_id, fields in changes.items():
        signalled += await notify_changed(client, sessions, customer_id, fields)
    return signalled
