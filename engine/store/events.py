"""Ingesting events: store once, update milestone state, and say who must hear of it.

The live API, the CLI and the simulator all ingest events through `ingest_event`, so
milestones are computed the same way everywhere (see `engine.language.milestones`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.language.milestones import matches
from engine.language.plan import MilestonePlan
from engine.statuses import EnrollmentStatus, EventStatus
from engine.store import repository
from engine.store.models import Enrollment, Event


@dataclass
class Ingested:
    """What became of one event."""

    new: bool
    known_customer: bool
    milestones_reached: list[str] = field(default_factory=list)
    enrollments: list[str] = field(default_factory=list)


def ingest_event(
    session: Session,
    *,
    event_id: str,
    customer_id: str,
    name: str,
    at: datetime,
    properties: dict[str, Any],
    milestones: dict[str, MilestonePlan],
) -> Ingested:
    """Store the event (idempotent by id) and record any milestone it completes.

    Returns which running enrollments of the customer should receive it. A repeat of an
    event id changes nothing and reaches nobody.
    """
    known = repository.customer_exists(session, customer_id)
    new = repository.record_event(
        session,
        event_id,
        customer_id,
        name,
        at,
        properties,
        status=EventStatus.RECEIVED if known else EventStatus.UNKNOWN_CUSTOMER,
        note=None if known else f"no customer '{customer_id}'",
    )
    result = Ingested(new=new, known_customer=known)
    if not new or not known:
        return result
    reached = repository.get_milestones(session, customer_id)
    for key, milestone in milestones.items():
        if key in reached or not matches(milestone, name, properties):
            continue
        names = [n for n in (milestone.event, milestone.metric) if n]
        count = sum(
            1
            for e in session.scalars(
                select(Event).where(Event.customer_id == customer_id, Event.name.in_(names))
            )
            if matches(milestone, e.name, dict(e.properties or {}))
        )
        if count >= (milestone.count if milestone.event else 1):
            repository.record_milestone(
                session,
                customer_id=customer_id,
                milestone=key,
                at=at,
                value=properties.get("value"),
            )
            result.milestones_reached.append(key)
    result.enrollments = list(
        session.scalars(
            select(Enrollment.workflow_id)
            .where(
                Enrollment.customer_id == customer_id,
                Enrollment.status == EnrollmentStatus.RUNNING,
            )
            .distinct()
        )
    )
    status = EventStatus.ROUTED if result.enrollments else EventStatus.STORED
    repository.set_event_status(session, event_id, status)
    return result
