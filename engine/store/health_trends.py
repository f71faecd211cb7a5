"""Reading the health history for the pages: trend lines, band changes and band counts.

`engine.store.health` computes and writes scores; this module only reads what it kept
(`HealthScore` daily points, `HealthChange` rows) in the shapes the customer list, the
customer page, the portfolio view and the QBR brief draw, each with one query whatever the
number of customers asked about, so a page of 500 customers costs one history query.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from engine.store.models import Customer, HealthChange, HealthScore

UNKNOWN = "unknown"
# The bands of a project without a scorecard (those of the shipped one).
DEFAULT_BANDS: dict[str, float] = {"red": 0, "yellow": 40, "green": 70}


def band_sql(bands: dict[str, float]) -> ColumnElement[str]:
    """A customer's band in SQL: the one the scorecard last computed, else the band of a
    posted score among ``bands`` (name -> the score it starts at), else `UNKNOWN`."""
    starts = sorted(bands.items(), key=lambda b: b[1], reverse=True)
    return case(
        (Customer.health_band.is_not(None), Customer.health_band),
        (Customer.health_score.is_(None), UNKNOWN),
        *((Customer.health_score >= start, name) for name, start in starts[:-1]),
        else_=starts[-1][0],
    )


@dataclass(frozen=True)
class Point:
    """One day of a customer's score (None when nothing was known that day)."""

    day: date
    score: int | None


@dataclass(frozen=True)
class BandChange:
    """A customer's band moving, as `HealthChange` recorded it."""

    customer_id: str
    at: datetime
    old_band: str | None
    new_band: str
    old: int | None
    new: int | None
    customer_name: str = ""
    segment: str | None = None


def trend_lines(
    session: Session, customer_ids: Sequence[str], since: date
) -> dict[str, list[Point]]:
    """Each customer's daily scores from ``since`` on, oldest first, in one query
    (customers without points are left out)."""
    lines: dict[str, list[Point]] = defaultdict(list)
    if not customer_ids:
        return {}
    rows = session.execute(
        select(HealthScore.customer_id, HealthScore.day, HealthScore.score)
        .where(HealthScore.customer_id.in_(customer_ids), HealthScore.day >= since)
        .order_by(HealthScore.customer_id, HealthScore.day)
    )
    for customer_id, day, score in rows:
        lines[customer_id].append(Point(day, score))
    return dict(lines)


def change_over(points: Iterable[Point]) -> int | None:
    """The last known score minus the first known one: how far a line rose (or fell)."""
    known = [p.score for p in points if p.score is not None]
    return known[-1] - known[0] if len(known) > 1 else None


def daily_points(session: Session, customer_id: str, since: date) -> list[HealthScore]:
    """One customer's `HealthScore` rows (with their measures) from ``since``, oldest first."""
    return list(
        session.scalars(
            select(HealthScore)
            .where(HealthScore.customer_id == customer_id, HealthScore.day >= since)
            .order_by(HealthScore.day)
        )
    )


def _band_moves() -> Any:
    return (
        select(HealthChange, Customer.name, Customer.segment)
        .join(Customer, Customer.id == HealthChange.customer_id, isouter=True)
        .where(
            HealthChange.new_band.is_not(None),
            HealthChange.new_band != func.coalesce(HealthChange.old_band, ""),
        )
        .order_by(HealthChange.at.desc(), HealthChange.id.desc())
    )


def _band_change(change: HealthChange, name: str | None, segment: str | None) -> BandChange:
    return BandChange(
        customer_id=change.customer_id,
        at=change.at,
        old_band=change.old_band,
        new_band=change.new_band or UNKNOWN,
        old=change.old,
        new=change.new,
        customer_name=name or change.customer_id,
        segment=segment,
    )


def band_changes(session: Session, customer_id: str, limit: int = 20) -> list[BandChange]:
    """The customer's latest band changes, newest first."""
    rows = session.execute(
        _band_moves().where(HealthChange.customer_id == customer_id).limit(limit)
    )
    return [_band_change(change, name, segment) for change, name, segment in rows]


def band_moves_since(
    session: Session, since: datetime, segment: str | None = None, limit: int = 200
) -> list[BandChange]:
    """Every band change since ``since`` (newest first), with the customer's name and
    segment; ``segment`` keeps one segment's."""
    query = _band_moves().where(HealthChange.at >= since).limit(limit)
    if segment:
        query = query.where(Customer.segment == segment)
    return [_band_change(change, name, seg) for change, name, seg in session.execute(query)]


def band_counts(session: Session, bands: dict[str, float]) -> dict[str | None, dict[str, int]]:
    """Customers per segment (None: no segment) and band (`band_sql`)."""
    band = band_sql(bands)
    counts: dict[str | None, dict[str, int]] = defaultdict(dict)
    for segment, name, n in session.execute(
        select(Customer.segment, band, func.count()).group_by(Customer.segment, band)
    ):
        counts[segment][name] = counts[segment].get(name, 0) + n
    return dict(counts)
