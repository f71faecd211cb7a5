"""Ingesting events: store once, update milestone state, and say who must hear of it.

The live API, the CLI and the simulators ingest events through `ingest_events` (one event:
`ingest_event`), so milestones are computed the same way everywhere (see
`engine.language.milestones`). A batch costs about one write: the customers and their
running enrollments are read with one query, and the events are inserted with one
executemany that skips the ids already stored (the duplicate check), all in the caller's
transaction; milestones are looked at only for customers with an event one can match. One
event alone (the live API's usual case) thus takes two statements when it reaches no
milestone. Under SQLite the writer lock is held from the first write to the commit, so
what follows the insert is kept short.

An enrollment hears of an event only when its plan reacts to that event's name
(`engine.language.listening`); the plan is the version the enrollment runs, read from the
plans given (the deployed ones) or from the registered versions. An enrollment whose
version is unknown hears of every event, as before routing looked at plans.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from engine.language.listening import listened_events
from engine.language.milestones import matches
from engine.language.plan import CompiledPlan, MilestonePlan
from engine.statuses import EnrollmentStatus, EventStatus
from engine.store import repository
from engine.store.models import Customer, Enrollment, Event, MilestoneState, PlaybookVersion, utcnow

IN_CHUNK = 500
"""Ids per ``IN (...)`` list, well under SQLite's bound parameters limit."""

_REGISTERED: dict[tuple[str, str], frozenset[str]] = {}
"""The listening set of each registered (playbook, version) read from the store: a version is
the hash of its plan, so it never changes."""


@dataclass(frozen=True, slots=True)
class IncomingEvent:
    """One event as a sender posted it (``at`` timezone-aware)."""

    id: str
    customer_id: str
    name: str
    at: datetime
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Ingested:
    """What became of one event."""

    new: bool
    known_customer: bool
    milestones_reached: list[str] = field(default_factory=list)
    enrollments: list[str] = field(default_factory=list)
    """The customer's running enrollments whose plan listens to this event."""


def ingest_event(
    session: Session,
    *,
    event_id: str,
    customer_id: str,
    name: str,
    at: datetime,
    properties: dict[str, Any],
    milestones: Mapping[str, MilestonePlan],
    plans: Mapping[str, CompiledPlan] | None = None,
) -> Ingested:
    """Store one event (idempotent by id); see `ingest_events`."""
    event = IncomingEvent(event_id, customer_id, name, at, properties)
    return ingest_events(session, [event], milestones=milestones, plans=plans)[0]


def ingest_events(
    session: Session,
    events: Sequence[IncomingEvent],
    *,
    milestones: Mapping[str, MilestonePlan],
    plans: Mapping[str, CompiledPlan] | None = None,
) -> list[Ingested]:
    """Store the events (idempotent by id), record the milestones they complete, and say for
    each which running enrollments must receive it; one answer per event, in order.

    A repeat of an event id, whether stored before or earlier in ``events``, changes nothing
    and reaches nobody. Events of unknown customers are stored (``unknown_customer``) and
    reach nobody. ``plans`` (by playbook id, usually the deployed set) are consulted first
    for the plan an enrollment runs; other versions are read from the registered ones.
    """
    for event in events:
        if event.at.tzinfo is None or event.at.utcoffset() is None:
            raise ValueError(f"event {event.id!r}: at must be timezone-aware, got {event.at!r}")
    # Repeats of earlier batches are not looked for first: the insert skips them and says
    # which rows it stored, so a batch without repeats costs no lookup of its ids.
    known, running = _customers(session, {e.customer_id for e in events})
    results: list[Ingested] = []
    seen: set[str] = set()
    for event in events:
        results.append(
            Ingested(new=event.id not in seen, known_customer=event.customer_id in known)
        )
        seen.add(event.id)
    listeners = _listeners(session, running, plans)
    rows: list[dict[str, Any]] = []
    received = utcnow()
    for event, result in zip(events, results, strict=True):
        if result.new:
            rows.append(_route(event, result, listeners.get(event.customer_id, {}), received))
    inserted = repository.insert_new_events(session, rows)
    for result, event in zip(results, events, strict=True):
        if result.new and event.id not in inserted:  # stored before, or meanwhile by another
            result.new, result.enrollments = False, []
    _record_milestones(session, events, results, milestones, inserted)
    return results


def _route(
    event: IncomingEvent,
    result: Ingested,
    heard: Mapping[str, frozenset[str] | None],
    received: datetime,
) -> dict[str, Any]:
    """Name in ``result`` the enrollments (of ``heard``, the customer's) that listen to the
    new event; return the event's row, with its status."""
    if not result.known_customer:
        status, note = _UNKNOWN_CUSTOMER, f"no customer '{event.customer_id}'"
    elif heard:
        result.enrollments = [
            workflow_id
            for workflow_id, names in heard.items()
            if names is None or event.name in names
        ]
        status, note = (_ROUTED if result.enrollments else _STORED), None
    else:  # most events of a large batch: no enrollment at all
        status, note = _STORED, None
    return {
        "id": event.id,
        "customer_id": event.customer_id,
        "name": event.name,
        "at": event.at,
        "properties": event.properties,
        "received_at": received,
        "status": status,
        "note": note,
    }


# The statuses as stored, converted once (an enum's str() is a Python call per event).
_ROUTED, _STORED = str(EventStatus.ROUTED), str(EventStatus.STORED)
_UNKNOWN_CUSTOMER = str(EventStatus.UNKNOWN_CUSTOMER)


# Built once: an IN list given as values is coerced value by value on every call.
_CUSTOMERS = (
    select(Customer.id, Enrollment.workflow_id, Enrollment.playbook_id, Enrollment.version)
    .outerjoin(
        Enrollment,
        and_(
            Enrollment.customer_id == Customer.id,
            Enrollment.status == EnrollmentStatus.RUNNING,
        ),
    )
    .where(Customer.id.in_(bindparam("ids", expanding=True)))
)
_REACHED = select(MilestoneState.customer_id, MilestoneState.milestone).where(
    MilestoneState.customer_id.in_(bindparam("ids", expanding=True))
)
_EARLIER = select(Event.id, Event.customer_id, Event.name, Event.properties).where(
    Event.customer_id.in_(bindparam("ids", expanding=True)),
    Event.name.in_(bindparam("names", expanding=True)),
)


def _customers(
    session: Session, customer_ids: set[str]
) -> tuple[set[str], list[tuple[str, str, str, str]]]:
    """Which of the customers exist, and their running enrollments (customer, workflow id,
    playbook, version): one query per `IN_CHUNK` customers."""
    known: set[str] = set()
    running: list[tuple[str, str, str, str]] = []
    ordered = sorted(customer_ids)
    connection = session.connection()  # past the ORM: plain rows, read for every batch
    for start in range(0, len(ordered), IN_CHUNK):
        for customer_id, workflow_id, pid, version in connection.execute(
            _CUSTOMERS, {"ids": ordered[start : start + IN_CHUNK]}
        ):
            known.add(customer_id)
            if workflow_id is not None:
                running.append((customer_id, workflow_id, pid, version))
    return known, running


def _listeners(
    session: Session,
    running: list[tuple[str, str, str, str]],
    plans: Mapping[str, CompiledPlan] | None,
) -> dict[str, dict[str, frozenset[str] | None]]:
    """Per customer, each running enrollment (workflow id) and the events its plan listens
    to (None: its plan is unknown, so it hears everything)."""
    out: dict[str, dict[str, frozenset[str] | None]] = defaultdict(dict)
    sets = {
        key: _listening(session, *key, plans)
        for key in {(pid, version) for *_, pid, version in running}
    }
    for customer_id, workflow_id, pid, version in sorted(running):
        names = sets[(pid, version)]
        held = out[customer_id]
        if workflow_id in held and (held[workflow_id] is None or names is None):
            held[workflow_id] = None  # two running rows under one id: hear the widest
        elif workflow_id in held:
            held[workflow_id] = held[workflow_id] | names  # type: ignore[operator]
        else:
            held[workflow_id] = names
    return out


def _listening(
    session: Session, playbook_id: str, version: str, plans: Mapping[str, CompiledPlan] | None
) -> frozenset[str] | None:
    """The events the plan ``playbook_id`` at ``version`` listens to; None if unknown."""
    plan = (plans or {}).get(playbook_id)
    if plan is not None and version and plan.version == version:
        return listened_events(plan)
    key = (playbook_id, version)
    if key in _REGISTERED:
        return _REGISTERED[key]
    row = session.get(PlaybookVersion, key) if version else None
    if row is None:
        return None
    try:
        names = listened_events(CompiledPlan.model_validate(row.plan))
    except ValidationError:  # a plan this engine cannot read: signal as if unknown
        return None
    _REGISTERED[key] = names
    return names


def _record_milestones(
    session: Session,
    events: Sequence[IncomingEvent],
    results: list[Ingested],
    milestones: Mapping[str, MilestonePlan],
    inserted: set[str],
) -> None:
    """Record the milestones the new events of known customers complete, each customer's
    reached milestones and earlier matching events read once for the whole batch."""
    fresh = [
        (event, result)
        for event, result in zip(events, results, strict=True)
        if result.new and result.known_customer
    ]
    candidates: dict[str, set[str]] = defaultdict(set)  # customer -> milestones it may reach
    for event, _ in fresh:
        for key, milestone in milestones.items():
            if matches(milestone, event.name, event.properties):
                candidates[event.customer_id].add(key)
    if not candidates:
        return
    customers = sorted(candidates)
    reached: set[tuple[str, str]] = set()
    counts: dict[tuple[str, str], int] = defaultdict(int)
    # Earlier events are read only for milestones one event cannot reach alone (a count
    # above one): inside the write transaction, a statement fewer is a shorter hold of
    # SQLite's writer lock.
    names = {
        n
        for key in set().union(*candidates.values())
        if _needed(milestones[key]) > 1
        for n in _names(milestones[key])
    }
    connection = session.connection()  # past the ORM, as `_customers`: plain rows
    for start in range(0, len(customers), IN_CHUNK):
        chunk = customers[start : start + IN_CHUNK]
        reached.update((c, m) for c, m in connection.execute(_REACHED, {"ids": chunk}))
        if not names:
            continue
        earlier = connection.execute(_EARLIER, {"ids": chunk, "names": sorted(names)}).all()
        for event_id, customer_id, name, properties in earlier:
            if event_id in inserted:
                continue
            for key in candidates[customer_id]:
                if matches(milestones[key], name, dict(properties or {})):
                    counts[(customer_id, key)] += 1
    reaches: list[dict[str, Any]] = []
    for event, result in fresh:
        for key, milestone in milestones.items():
            mark = (event.customer_id, key)
            if (
                key not in candidates[event.customer_id]
                or mark in reached
                or not matches(milestone, event.name, event.properties)
            ):
                continue
            counts[mark] += 1
            if counts[mark] >= _needed(milestone):
                reaches.append(
                    {
                        "customer_id": event.customer_id,
                        "milestone": key,
                        "at": event.at,
                        "value": event.properties.get("value"),
                    }
                )
                reached.add(mark)
                result.milestones_reached.append(key)
    repository.record_milestones(session, reaches)


def _needed(milestone: MilestonePlan) -> int:
    """How many matching events reach ``milestone`` (a metric: the first that matches)."""
    return milestone.count if milestone.event else 1


def _names(milestone: MilestonePlan) -> list[str]:
    return [n for n in (milestone.event, milestone.metric) if n]
