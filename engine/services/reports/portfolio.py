"""The portfolio today: customers per health band and segment, and the renewals of the next
90 days with their band.

Bands come from `Customer.health_score` (0-100): red below 40, yellow from 40 to 69, green
from 70, unknown without a score.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.services.reports.model import Cell, Chart, Column, Report, ReportFilters, Table
from engine.store.models import Customer

BANDS = ("red", "yellow", "green", "unknown")
RENEWALS_WITHIN = timedelta(days=90)


def band(score: int | None) -> str:
    """The health band of a score: red < 40 <= yellow < 70 <= green; unknown for None."""
    if score is None:
        return "unknown"
    return "red" if score < 40 else "yellow" if score < 70 else "green"


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="portfolio", title="Portfolio", filters=filters)
    query = select(
        Customer.id,
        Customer.name,
        Customer.segment,
        Customer.health_score,
        Customer.renewal_date,
        Customer.owner_email,
    )
    if filters.segment:
        query = query.where(Customer.segment == filters.segment)
    rows = session.execute(query).all()
    bands: dict[str, dict[str, set[str]]] = defaultdict(lambda: {b: set() for b in BANDS})
    for r in rows:
        segment = r.segment or "(none)"
        bands[segment][band(r.health_score)].add(r.id)
        bands["all segments"][band(r.health_score)].add(r.id)
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
    for segment in sorted(bands, key=lambda s: (s == "all segments", s)):
        row: dict[str, Cell] = {"segment": Cell(value=segment)}
        for b in BANDS:
            row[b] = report.customers(f"portfolio|{segment}|{b}", bands[segment][b])
        row["total"] = report.customers(
            f"portfolio|{segment}|total", set().union(*bands[segment].values())
        )
        table.rows.append(row)
    report.tables.append(table)

    today = now.date()
    horizon = (now + RENEWALS_WITHIN).date()
    renewals = sorted(
        (r for r in rows if r.renewal_date is not None and today <= r.renewal_date <= horizon),
        key=lambda r: (r.renewal_date, r.id),
    )
    upcoming = Table(
        key="renewals",
        title=f"Renewals in the next {RENEWALS_WITHIN.days} days",
        columns=[
            Column(key="customer", label="Customer", kind="text"),
            Column(key="renewal_date", label="Renews", kind="text"),
            Column(key="band", label="Band", kind="text"),
            Column(key="health_score", label="Health", kind="number"),
            Column(key="segment", label="Segment", kind="text"),
            Column(key="owner", label="Owner", kind="text"),
        ],
    )
    for r in renewals:
        cell = f"portfolio|renewal|{r.id}"
        report.cells[cell] = [r.id]
        upcoming.rows.append(
            {
                "customer": Cell(value=r.name, cell=cell),
                "renewal_date": Cell(value=r.renewal_date.isoformat()),
                "band": Cell(value=band(r.health_score)),
                "health_score": Cell(value=r.health_score),
                "segment": Cell(value=r.segment or "(none)"),
                "owner": Cell(value=r.owner_email),
            }
        )
    report.tables.append(upcoming)
    return report
