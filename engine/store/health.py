"""Health scores in the store: computed from a customer's events and fields, kept as history.

`engine.language.health.score_customer` does the arithmetic; this module reads what it
needs (the events within the scorecard's longest window, and the latest event of each name
for "never sent" and ``days_since``), writes the result on the customer (`health_score`,
`health_band`), keeps one `HealthScore` point per customer per day and a `HealthChange` for
every change of score or band, and gives expressions their ``health`` value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from engine.language.health import EventFact, HealthResult, Scorecard, score_customer
from engine.store.models import Customer, Event, HealthChange, HealthScore

BATCH = 500


@dataclass(frozen=True)
class Recorded:
    """What one computation changed for a customer."""

    customer_id: str
    old_score: int | None
    old_band: str | None
    result: HealthResult

    @property
    def changed(self) -> bool:
        if self.result.score is None:
            return False
        return self.old_score != self.result.score or self.old_band != self.result.band


def customer_fields(customer: Any) -> dict[str, Any]:
    """The fields a ``field:`` measure may read, as expressions name them."""
    return {
        "segment": customer.segment or "",
        "renewal_date": customer.renewal_date,
        "health_score": customer.health_score,
        "attributes": dict(customer.attributes or {}),
        "tags": list(customer.tags or []),
    }


def event_facts(
    session: Session, card: Scorecard, customer_ids: list[str], now: datetime
) -> dict[str, list[EventFact]]:
    """Each customer's events that scoring reads: those in the longest window (of the
    measured names, or of any name when a measure is a share of active users) and the
    latest of each measured name before it."""
    names = sorted(card.event_names())
    facts: dict[str, list[EventFact]] = {cid: [] for cid in customer_ids}
    if not names or not customer_ids:
        return facts
    since = now - timedelta(seconds=card.longest_window())
    any_name = any(m.measure == "user_share" for m in card.measures.values())
    recent = select(Event.customer_id, Event.name, Event.at, Event.properties).where(
        Event.customer_id.in_(customer_ids), Event.at >= since, Event.at <= now
    )
    if not any_name:
        recent = recent.where(Event.name.in_(names))
    for cid, name, at, properties in session.execute(recent):
        facts[cid].append(EventFact(name, at, properties or {}))
    latest = (
        select(Event.customer_id, Event.name, func.max(Event.at))
        .where(Event.customer_id.in_(customer_ids), Event.name.in_(names), Event.at < since)
        .group_by(Event.customer_id, Event.name)
    )
    for cid, name, at in session.execute(latest):
        facts[cid].append(EventFact(name, at, {}))
    return facts


def compute(session: Session, card: Scorecard, customer: Customer, now: datetime) -> HealthResult:
    """The customer's health now, from the store (nothing written)."""
    facts = event_facts(session, card, [customer.id], now)[customer.id]
    return score_customer(card, customer_fields(customer), facts, now, customer.segment)


def record(
    session: Session,
    customer: Any,
    result: HealthResult,
    now: datetime,
    today: dict[str, HealthScore] | None = None,
) -> Recorded:
    """Write a computed result: on the customer, as today's history point, and as a change
    when the score or band moved. A result with nothing known leaves the customer's score
    alone (a score posted by a CRM stays until the scorecard has data). ``today``: the
    day's points already read for a batch (customer id -> point), saving a query each."""
    recorded = Recorded(customer.id, customer.health_score, customer.health_band, result)
    if recorded.changed and result.score is not None:
        session.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(health_score=result.score, health_band=result.band)
        )
        session.add(
            HealthChange(
                customer_id=customer.id,
                at=now,
                old=recorded.old_score,
                new=result.score,
                old_band=recorded.old_band,
                new_band=result.band,
            )
        )
    if today is not None:
        point = today.get(customer.id)
    else:
        point = session.scalar(
            select(HealthScore).where(
                HealthScore.customer_id == customer.id, HealthScore.day == now.date()
            )
        )
    if point is None:
        point = HealthScore(customer_id=customer.id, day=now.date())
        session.add(point)
    point.at, point.score, point.band = now, result.score, result.band
    point.known, point.measures = result.known, result.measures_dict()
    return recorded


def recompute(
    session: Session, card: Scorecard, customer_id: str, now: datetime
) -> Recorded | None:
    """Compute and record one customer's health; None for an unknown customer."""
    customer = session.get(Customer, customer_id, populate_existing=True)
    if customer is None:
        return None
    return record(session, customer, compute(session, card, customer, now), now)


def recompute_all(
    session: Session, card: Scorecard, now: datetime, batch: int = BATCH
) -> list[Recorded]:
    """Compute and record every customer's health (the daily recompute), in batches: one
    events query per batch, not one per customer."""
    ids = list(session.scalars(select(Customer.id).order_by(Customer.id)))
    out: list[Recorded] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        customers = session.scalars(select(Customer).where(Customer.id.in_(chunk))).all()
        facts = event_facts(session, card, chunk, now)
        today = {
            p.customer_id: p
            for p in session.scalars(
                select(HealthScore).where(
                    HealthScore.customer_id.in_(chunk), HealthScore.day == now.date()
                )
            )
        }
        for customer in customers:
            result = score_customer(
                card, customer_fields(customer), facts[customer.id], now, customer.segment
            )
            out.append(record(session, customer, result, now, today))
        session.flush()
    return out


def history(session: Session, customer_id: str, since: date | None = None) -> list[HealthScore]:
    """The customer's daily points, oldest first."""
    stmt = select(HealthScore).where(HealthScore.customer_id == customer_id)
    if since is not None:
        stmt = stmt.where(HealthScore.day >= since)
    return list(session.scalars(stmt.order_by(HealthScore.day)))


def trend_of(points: Iterable[tuple[date, int | None]], today: date) -> Callable[[Any], int | None]:
    """``health.trend(30)`` / ``health.trend('30d')``: today's score minus the score that
    many days ago (the last point on or before then), None when either is unknown."""
    by_day = sorted(points)

    def score_on(day: date) -> int | None:
        found = [score for d, score in by_day if d <= day]
        return found[-1] if found else None

    def trend(days: Any) -> int | None:
        back = days.days if isinstance(days, timedelta) else int(str(days).rstrip("d"))
        now, then = score_on(today), score_on(today - timedelta(days=back))
        return None if now is None or then is None else now - then

    return trend


def health_value(session: Session, customer: Any, today: date) -> dict[str, Any]:
    """What expressions and templates see as ``health``: score, band, known share, each
    measure (value, points, weight), the raw values (``raw``), and ``trend(days)``."""
    points = history(session, customer.id, today - timedelta(days=366))
    latest = points[-1] if points else None
    measures = dict(latest.measures) if latest else {}
    return {
        "score": customer.health_score,
        "band": customer.health_band or "unknown",
        "known": latest.known if latest else 0.0,
        "measures": measures,
        "raw": {name: m.get("value") for name, m in measures.items()},
        "trend": trend_of([(p.day, p.score) for p in points], today),
    }
