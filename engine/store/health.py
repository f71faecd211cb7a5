"""Health scores in the store: computed from a customer's events and fields, kept as history.

`engine.language.health.score_customer` does the arithmetic; this module reads what it
needs (the events within the scorecard's longest window, and the latest event of each name
for "never sent" and ``days_since``), writes the result on the customer (`health_score`,
`health_band`), keeps one `HealthScore` point per customer per day and a `HealthChange` for
every change of score or band, and gives expressions their ``health`` value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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
    # Each signal's on/off/unknown at the previous computation (the latest point).
    old_signals: dict[str, bool | None] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        if self.result.score is None:
            return False
        return self.old_score != self.result.score or self.old_band != self.result.band

    @property
    def signals_changed(self) -> list[str]:
        """The signals that turned on, off or unknown since the previous computation."""
        return [s.name for s in self.result.signals if self.old_signals.get(s.name) != s.on]

    @property
    def signals_on(self) -> list[str]:
        """The signals that just turned on."""
        return [
            s.name for s in self.result.signals if s.on and self.old_signals.get(s.name) is not True
        ]


def customer_fields(customer: Any) -> dict[str, Any]:
    """The fields a ``field:`` measure may read, as expressions name them."""
    return {
        "segment": customer.segment or "",
        "renewal_date": customer.renewal_date,
        "health_score": customer.health_score,
        "attributes": dict(customer.attributes or {}),
        "tags": list(customer.tags or []),
        "created_at": customer.created_at,
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


def latest_points(session: Session, customer_ids: list[str], today: date) -> dict[str, HealthScore]:
    """Each customer's latest history point up to ``today`` (customer id -> point)."""
    last = (
        select(HealthScore.customer_id, func.max(HealthScore.day).label("day"))
        .where(HealthScore.customer_id.in_(customer_ids), HealthScore.day <= today)
        .group_by(HealthScore.customer_id)
        .subquery()
    )
    rows = session.scalars(
        select(HealthScore).join(
            last, (HealthScore.customer_id == last.c.customer_id) & (HealthScore.day == last.c.day)
        )
    )
    return {p.customer_id: p for p in rows}


def record(
    session: Session,
    customer: Any,
    result: HealthResult,
    now: datetime,
    latest: dict[str, HealthScore] | None = None,
) -> Recorded:
    """Write a computed result: on the customer, as today's history point, and as a change
    when the score or band moved. A result with nothing known leaves the customer's score
    alone (a score posted by a CRM stays until the scorecard has data). ``latest``: the
    customers' latest points already read for a batch (`latest_points`), saving a query
    each; the previous point's signals tell which signals changed."""
    if latest is None:
        latest = latest_points(session, [customer.id], now.date())
    previous = latest.get(customer.id)
    old_signals = {
        name: s.get("on") for name, s in ((previous.signals or {}) if previous else {}).items()
    }
    recorded = Recorded(
        customer.id, customer.health_score, customer.health_band, result, old_signals
    )
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
    point = previous if previous is not None and previous.day == now.date() else None
    if point is None:
        point = HealthScore(customer_id=customer.id, day=now.date())
        session.add(point)
        latest[customer.id] = point
    point.at, point.score, point.band = now, result.score, result.band
    point.known, point.measures = result.known, result.measures_dict()
    point.signals = result.signals_dict()
    return recorded


def recompute(
    session: Session, card: Scorecard, customer_id: str, now: datetime
) -> Recorded | None:
    """Compute and record one customer's health; None for an unknown customer."""
    customer = session.get(Customer, customer_id, populate_existing=True)
    if customer is None:
        return None
    return record(session, customer, compute(session, card, customer, now), now)


# The customer columns scoring reads (`customer_fields`) and `record` writes beside.
SCORED_COLUMNS = (
    Customer.id,
    Customer.segment,
    Customer.renewal_date,
    Customer.health_score,
    Customer.health_band,
    Customer.attributes,
    Customer.tags,
    Customer.created_at,
)


@dataclass
class Scored:
    """One customer's health computed now, not yet recorded (`score_all`)."""

    customer: Any  # a row of SCORED_COLUMNS
    result: HealthResult
    latest: dict[str, HealthScore]  # its batch's latest points (`latest_points`)

    @property
    def moves(self) -> bool:
        """Whether recording it changes the score, band or a signal."""
        point = self.latest.get(self.customer.id)
        old = {n: s.get("on") for n, s in ((point.signals or {}) if point else {}).items()}
        c = self.customer
        would = Recorded(c.id, c.health_score, c.health_band, self.result, old)
        return would.changed or bool(would.signals_changed)


def score_all(session: Session, card: Scorecard, now: datetime, batch: int = BATCH) -> list[Scored]:
    """Every customer's health now (nothing written), in batches: one events query per
    batch, not one per customer."""
    ids = list(session.scalars(select(Customer.id).order_by(Customer.id)))
    out: list[Scored] = []
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        customers = session.execute(select(*SCORED_COLUMNS).where(Customer.id.in_(chunk))).all()
        facts = event_facts(session, card, chunk, now)
        latest = latest_points(session, chunk, now.date())
        for customer in customers:
            result = score_customer(
                card, customer_fields(customer), facts[customer.id], now, customer.segment
            )
            out.append(Scored(customer, result, latest))
    return out


def record_all(session: Session, scored: list[Scored], now: datetime) -> list[Recorded]:
    """Record what `score_all` computed."""
    return [record(session, s.customer, s.result, now, s.latest) for s in scored]


def recompute_all(
    session: Session, card: Scorecard, now: datetime, batch: int = BATCH
) -> list[Recorded]:
    """Compute and record every customer's health (the daily recompute)."""
    return record_all(session, score_all(session, card, now, batch), now)


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
    measure (value, points, weight), the raw values (``raw``), each risk signal's on/off/
    unknown (``signals``) and its value and text (``details``), and ``trend(days)``."""
    points = history(session, customer.id, today - timedelta(days=366))
    latest = points[-1] if points else None
    measures = dict(latest.measures) if latest else {}
    signals = dict(latest.signals or {}) if latest else {}
    return {
        "signals": {name: s.get("on") for name, s in signals.items()},
        "details": signals,
        "score": customer.health_score,
        "band": customer.health_band or "unknown",
        "known": latest.known if latest else 0.0,
        "measures": measures,
        "raw": {name: m.get("value") for name, m in measures.items()},
        "trend": trend_of([(p.day, p.score) for p in points], today),
    }
