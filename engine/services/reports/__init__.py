"""Reports: funnel, time to value, email performance, task performance and portfolio.

Shared by the API (JSON and CSV), the web pages and ``playbook report``; each needs only a
store session. `build` makes one `Report` (`model`) for a kind and filters;
`customers_behind` lists the customers behind one of its figures (its `cell` key).

- `funnel`: per playbook version, how enrollments moved through the steps (`step_visits`).
- `ttv`: time from a customer's start to each milestone.
- `email`: engagement per step and variant, with a significance test between variants.
- `tasks`: task throughput per CSM and playbook.
- `portfolio`: customers per health band, renewals in the next 90 days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import Invalid, NotFound
from engine.services.reports import email, funnel, portfolio, tasks, ttv
from engine.services.reports.model import KINDS, TITLES, Report, ReportFilters, ReportKind
from engine.store.models import Customer, utcnow

BUILDERS: dict[str, Callable[[Session, ReportFilters, datetime], Report]] = {
    "funnel": funnel.build,
    "ttv": ttv.build,
    "email": email.build,
    "tasks": tasks.build,
    "portfolio": portfolio.build,
}


def build(
    session: Session, kind: str, filters: ReportFilters, now: datetime | None = None
) -> Report:
    """The report of ``kind`` over ``filters``; `Invalid` for an unknown kind."""
    if kind not in BUILDERS:
        raise Invalid(f"no report '{kind}'; the reports are {', '.join(KINDS)}")
    if filters.since and filters.until and filters.since > filters.until:
        raise Invalid("since must not be after until")
    return BUILDERS[kind](session, filters, now or utcnow())


def customers_behind(
    session: Session, kind: str, filters: ReportFilters, cell: str, now: datetime | None = None
) -> tuple[Report, list[Customer]]:
    """The customers a figure of the report counts, by name; `NotFound` for a cell the
    report (with these filters) does not have."""
    report = build(session, kind, filters, now)
    # The funnel aggregates in the database and finds a figure's customers on demand.
    ids = (
        funnel.customers(session, filters, cell, now or utcnow())
        if kind == "funnel"
        else report.cells.get(cell)
    )
    if ids is None:
        raise NotFound(f"the {kind} report has no figure '{cell}' with these filters")
    found = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    return report, [found.get(i) or Customer(id=i, name=i) for i in ids]


__all__ = [
    "KINDS",
    "TITLES",
    "Report",
    "ReportFilters",
    "ReportKind",
    "build",
    "customers_behind",
]
