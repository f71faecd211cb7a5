"""Health scores in the store: computed from a customer's events and fields, kept as history.

`engine.language.health.score_customer` does the arithmetic; this module reads what it
needs (the events within the scorecard's longest window, and the latest event of each name
for "never sent" and ``days_since``), writes the result on the customer (`health_score`,
`health_band`), keeps one `HealthScore` point per customer per day and a `HealthChange` for
every change of score or band, and gives expressions their ``health`` value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session, sessionmaker

from engine.language.health import EventFact, HealthResult, Scorecard, score_customer
from engine.store.models import Customer, Event, HealthChange, HealthScore
from engine.store.repository import dialect_insert

PAGE = 1000

Snapshot = Callable[[Session, str], "dict[str, Any] | None"]
"""Reads a customer's data as conditions see it (`engine.store.context.customer_snapshot`)."""


@dataclass(frozen=True)
class Recorded:
    """What one computation changed for a customer."""

    customer_id: str
    old_score: int | None
    old_band: str | None
    result: HealthResult
    # Each signal's on/off/unknown at the previous computation (the latest point).
    old_signals: dict[str, bool | None] = field(default_factory=dict)
    # What the customer was before, for ``on_change`` triggers (`recompute_book`'s ``before``).
    before: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        if self.result.score is None:
            return False
        return self.old_score != self.result.score or self.old_band != self.result.band

    @property
    def moved(self) -> bool:
        """Whether the score, band or a signal moved: what running enrollments are told of
        and ``on_change`` triggers are judged for."""
        return self.changed or bool(self.signals_changed)

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
    """Compute and record one customer's health (`recompute_page` for a page of one: what
    a measured event or a customer save costs); None for an unknown customer."""
    rows = session.execute(select(*Customer.__table__.c).where(Customer.id == customer_id)).all()
    return recompute_page(session, card, rows, now)[0] if rows else None


def recompute_all(
    session: Session, card: Scorecard, now: datetime, batch: int = PAGE
) -> list[Recorded]:
    """Compute and record every customer's health in the caller's transaction, a page of
    ``batch`` customers at a time (`recompute_page`). The daily recompute uses
    `recompute_book`, which commits each page and keeps no more than a page in memory."""
    out: list[Recorded] = []
    after: str | None = None
    while page := customer_page(session, after, batch):
        out += recompute_page(session, card, page, now)
        after = page[-1].id
    return out


def recompute_book(
    sessions: sessionmaker[Session],
    card: Scorecard,
    now: datetime,
    page: int = PAGE,
    before: Snapshot | None = None,
) -> Iterator[list[Recorded]]:
    """The daily recompute: every customer's health, page by page in customer id order,
    one transaction per page, yielding each page's results once committed. ``before``
    (for ``on_change`` triggers) reads what a changed customer was before its page is
    written."""
    after: str | None = None
    while True:
        with sessions.begin() as session:
            rows = customer_page(session, after, page)
            if not rows:
                return
            recorded = recompute_page(session, card, rows, now, before)
        after = rows[-1].id
        yield recorded


def customer_page(session: Session, after: str | None, size: int) -> Sequence[Any]:
    """Up to ``size`` customers (plain rows, not ORM objects) with ids after ``after``."""
    stmt = select(*Customer.__table__.c).order_by(Customer.id).limit(size)
    if after is not None:
        stmt = stmt.where(Customer.id > after)
    return session.execute(stmt).all()


def recompute_page(
    session: Session,
    card: Scorecard,
    customers: Sequence[Any],
    now: datetime,
    before: Snapshot | None = None,
) -> list[Recorded]:
    """Compute and record the health of a page of customers (rows or objects with the
    `Customer` columns), set-based: one events query (two with "latest before the window"),
    one read of the latest points (the previous signals, and whether today has a point),
    then bulk writes of the customers whose score or band moved, their changes, and the
    day's points with their signals. Gives the same rows as `record` for each. ``before``
    reads what each customer whose score, band or signals moved (`Recorded.moved`) was."""
    if not customers:
        return []
    ids = [c.id for c in customers]
    day = now.date()
    facts = event_facts(session, card, ids, now)
    previous = _previous_points(session, ids, day)
    recorded = [
        Recorded(
            c.id,
            c.health_score,
            c.health_band,
            score_customer(card, customer_fields(c), facts[c.id], now, c.segment),
            previous[c.id][1] if c.id in previous else {},
        )
        for c in customers
    ]
    if before is not None:
        # Read before anything of the page is written, in the same transaction.
        recorded = [
            replace(r, before=before(session, r.customer_id)) if r.moved else r for r in recorded
        ]
    moved = [r for r in recorded if r.changed]
    existing = {cid for cid, (last, _) in previous.items() if last == day}
    customers_table = cast(Table, Customer.__table__)
    if moved:
        session.execute(
            update(customers_table)
            .where(customers_table.c.id == bindparam("b_id"))
            .values(health_score=bindparam("b_score"), health_band=bindparam("b_band")),
            [{"b_id": r.customer_id, "b_score": r.result.score, "b_band": r.result.band}
             for r in moved],
        )  # fmt: skip
        session.execute(
            insert(HealthChange),
            [
                {
                    "customer_id": r.customer_id,
                    "at": now,
                    "old": r.old_score,
                    "new": r.result.score,
                    "old_band": r.old_band,
                    "new_band": r.result.band,
                }
                for r in moved
            ],
        )
    points = [
        {
            "customer_id": r.customer_id,
            "day": day,
            "at": now,
            "score": r.result.score,
            "band": r.result.band,
            "known": r.result.known,
            "measures": r.result.measures_dict(),
            "signals": r.result.signals_dict(),
        }
        for r in recorded
    ]
    if points:
        # An upsert, not insert-or-update by what was read: two writers scoring the same
        # customer at once (two event batches) both find no point for today.
        upsert = dialect_insert(session, HealthScore)
        session.execute(
            upsert.on_conflict_do_update(
                index_elements=["customer_id", "day"],
                set_={
                    key: upsert.excluded[key]
                    for key in ("at", "score", "band", "known", "measures", "signals")
                },
            ),
            points,
        )
    _expire(session, {r.customer_id for r in moved}, existing)
    return recorded


def _previous_points(
    session: Session, customer_ids: list[str], today: date
) -> dict[str, tuple[date, dict[str, bool | None]]]:
    """Each customer's latest point up to ``today`` as (its day, each signal's on/off/
    unknown then), in one query: what `latest_points` gives `record`, without the objects."""
    last = (
        select(HealthScore.customer_id, func.max(HealthScore.day).label("day"))
        .where(HealthScore.customer_id.in_(customer_ids), HealthScore.day <= today)
        .group_by(HealthScore.customer_id)
        .subquery()
    )
    rows = session.execute(
        select(HealthScore.customer_id, HealthScore.day, HealthScore.signals).join(
            last, (HealthScore.customer_id == last.c.customer_id) & (HealthScore.day == last.c.day)
        )
    )
    return {
        cid: (day, {name: s.get("on") for name, s in (signals or {}).items()})
        for cid, day, signals in rows
    }


def _expire(session: Session, customers: set[str], points: set[str]) -> None:
    """Expire the session's objects the bulk writes changed behind its back, so a caller
    that holds them reads the new values."""
    for obj in list(session.identity_map.values()):
        stale = (isinstance(obj, Customer) and obj.id in customers) or (
            isinstance(obj, HealthScore) and obj.customer_id in points
        )
        if stale:
            session.expire(obj)


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


_POINTS = cast(Table, HealthScore.__table__)
# `health_value`'s two reads, built once (a customer's points since a day): the latest
# point's measures and signals through the ORM (which flushes pending points first), and
# the (day, score) pairs as plain rows.
_LATEST_POINT = (
    select(HealthScore.known, HealthScore.measures, HealthScore.signals)
    .where(HealthScore.customer_id == bindparam("customer"), HealthScore.day >= bindparam("since"))
    .order_by(HealthScore.day.desc())
    .limit(1)
)
_SCORES = (
    select(_POINTS.c.day, _POINTS.c.score)
    .where(_POINTS.c.customer_id == bindparam("customer"), _POINTS.c.day >= bindparam("since"))
    .order_by(_POINTS.c.day)
)


def health_value(session: Session, customer: Any, today: date) -> dict[str, Any]:
    """What expressions and templates see as ``health``: score, band, known share, each
    measure (value, points, weight), the raw values (``raw``), each risk signal's on/off/
    unknown (``signals``) and its value and text (``details``), and ``trend(days)``."""
    # Every decision, email and task reads this: only the latest point's JSON, and the
    # year's scores as plain rows (a year of objects and their JSON decoded per read made a
    # simulated year of a book spend a quarter of its time here).
    params = {"customer": customer.id, "since": today - timedelta(days=366)}
    latest = session.execute(_LATEST_POINT, params).first()
    points = session.execute(_SCORES, params).all() if latest is not None else []
    measures = dict(latest.measures or {}) if latest else {}
    signals = dict(latest.signals or {}) if latest else {}
    return {
        "signals": {name: s.get("on") for name, s in signals.items()},
        "details": signals,
        "score": customer.health_score,
        "band": customer.health_band or "unknown",
        "known": latest.known if latest else 0.0,
        "measures": measures,
        "raw": {name: m.get("value") for name, m in measures.items()},
        "trend": trend_of([(day, score) for day, score in points], today),
    }
