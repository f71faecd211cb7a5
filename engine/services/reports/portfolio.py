"""The portfolio today: customers per health band and segment, and the renewals of the next
90 days with their band, a page (`RENEWALS_PAGE`) at a time.

Bands come from `Customer.health_score` (0-100): red below 40, yellow from 40 to 69, green
from 70, unknown without a score. The portfolio is a picture of today: of the filters it
takes only the segment (the page offers no other) and the page of renewals. Counts are
aggregated in the database; the customers behind a figure are queried when asked for
(`customers`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, case, func, select
from sqlalchemy.orm import Session

from engine.services.reports.model import (
    Cell,
    Chart,
    Column,
    Pager,
    Report,
    ReportFilters,
    Table,
)
from engine.store.models import Customer

BANDS = ("red", "yellow", "green", "unknown")
RENEWALS_WITHIN = timedelta(days=90)
# Renewals a page: a book of 10,000 customers has about 2,500 in 90 days, too many for a
# page to render (the `page` filter moves through them).
RENEWALS_PAGE = 50


def band(score: int | None) -> str:
    """The health band of a score: red < 40 <= yellow < 70 <= green; unknown for None."""
    if score is None:
        return "unknown"
    return "red" if score < 40 else "yellow" if score < 70 else "green"


# The band of `Customer.health_score`, in SQL (as `band`).
band_sql: ColumnElement[str] = case(
    (Customer.health_score.is_(None), "unknown"),
    (Customer.health_score < 40, "red"),
    (Customer.health_score < 70, "yellow"),
    else_="green",
)
ALL = "all segments"
NO_SEGMENT = "(none)"


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="portfolio", title="Portfolio", filters=filters)
    query = select(Customer.segment, band_sql, func.count()).group_by(Customer.segment, band_sql)
    if filters.segment:
        query = query.where(Customer.segment == filters.segment)
    bands: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(BANDS, 0))
    for segment, name, n in session.execute(query):
        bands[segment or NO_SEGMENT][name] += n
        bands[ALL][name] += n
    table = Table(
        key="bands",
        title="Customers by health band",
        columns=[
            Column(key="segment", label="Segment", kind="text"),
            *(Column(key=b, label=b.title()) for b in BANDS),
            Column(key="total", label="Total"),
        ],
        chart=Chart(type="stacked", label="segment", series=list(BANDS), title="Health bands"),
    )
    for segment in sorted(bands, key=lambda s: (s == ALL, s)):
        row: dict[str, Cell] = {"segment": Cell(value=segment)}
        for b in BANDS:
            row[b] = Cell(value=bands[segment][b], cell=f"portfolio|{segment}|{b}")
        row["total"] = Cell(value=sum(bands[segment].values()), cell=f"portfolio|{segment}|total")
        table.rows.append(row)
    report.tables.append(table)

    today = now.date()
    horizon = (now + RENEWALS_WITHIN).date()
    window = and_(Customer.renewal_date >= today, Customer.renewal_date <= horizon)
    if filters.segment:
        window = and_(window, Customer.segment == filters.segment)
    total = session.scalar(select(func.count()).select_from(Customer).where(window)) or 0
    pages = max(1, -(-total // RENEWALS_PAGE))
    page = min(filters.page, pages)
    renewing = (
        select(
            Customer.id,
            Customer.name,
            Customer.segment,
            Customer.health_score,
            Customer.renewal_date,
            Customer.owner_email,
        )
        .where(window)
        .order_by(Customer.renewal_date, Customer.id)
        .limit(RENEWALS_PAGE)
        .offset((page - 1) * RENEWALS_PAGE)
    )
    upcoming = Table(
        key="renewals",
        title=f"Renewals in the next {RENEWALS_WITHIN.days} days: {total}",
        pager=Pager(page=page, pages=pages, total=total) if pages > 1 else None,
        columns=[
            Column(key="customer", label="Customer", kind="text"),
            Column(key="renewal_date", label="Renews", kind="text"),
            Column(key="band", label="Band", kind="text"),
            Column(key="health_score", label="Health", kind="number"),
            Column(key="segment", label="Segment", kind="text"),
            Column(key="owner", label="Owner", kind="text"),
        ],
    )
    for r in session.execute(renewing):
        upcoming.rows.append(
            {
                "customer": Cell(value=r.name, cell=f"portfolio|renewal|{r.id}"),
                "renewal_date": Cell(value=r.renewal_date.isoformat()),
                "band": Cell(value=band(r.health_score)),
                "health_score": Cell(value=r.health_score),
                "segment": Cell(value=r.segment or NO_SEGMENT),
                "owner": Cell(value=r.owner_email),
            }
        )
    report.tables.append(upcoming)
    return report


def customers(session: Session, filters: ReportFilters, cell: str) -> list[str] | None:
    """The customers behind one figure (``portfolio|<segment>|<band or total>`` or
    ``portfolio|renewal|<customer>``), or None if the report has no such figure."""
    parts = cell.split("|")
    if len(parts) != 3 or parts[0] != "portfolio":
        return None
    _, segment, which = parts
    query = select(Customer.id)
    if filters.segment:
        query = query.where(Customer.segment == filters.segment)
    if segment == "renewal":
        return sorted(session.scalars(query.where(Customer.id == which)))
    if which not in (*BANDS, "total"):
        return None
    if segment == NO_SEGMENT:
        query = query.where(Customer.segment.is_(None))
    elif segment != ALL:
        query = query.where(Customer.segment == segment)
    if which != "total":
        query = query.where(band_sql == which)
    return sorted(session.scalars(query))
