"""Reports: funnel, time to value, email performance, task performance and portfolio.

Shared by the API (JSON and CSV), the web pages and ``playbook report``; each needs only a
store session. `build` makes one `Report` (`model`) for a kind and filters;
`customers_behind` lists the customers behind one of its figures (its `cell` key). Each
report aggregates in the database and finds a figure's customers only when asked (its
module's `customers`), so a page costs its counts, not a list per figure.

- `funnel`: per playbook version, how enrollments moved through the steps (`step_visits`).
- `ttv`: time from a customer's start to each milestone.
- `email`: engagement per step and variant, with a significance test between variants.
- `tasks`: task throughput per CSM and playbook.
- `portfolio`: customers per health band, renewals in the next 90 days.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import cast

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
# The customers behind one figure of a report: sorted IDs, or None for no such figure.
FINDERS: dict[str, Callable[[Session, ReportFilters, str, datetime], list[str] | None]] = {
    "funnel": funnel.customers,
    "ttv": lambda session, filters, cell, _now: ttv.customers(session, filters, cell),
    "email": lambda session, filters, cell, _now: email.customers(session, filters, cell),
    "tasks": lambda session, filters, cell, _now: tasks.customers(session, filters, cell),
    "portfolio": lambda session, filters, cell, _now: portfolio.customers(session, filters, cell),
}


def _checked(kind: str, filters: ReportFilters) -> None:
    if kind not in BUILDERS:
        raise Invalid(f"no report '{kind}'; the reports are {', '.join(KINDS)}")
    if filters.since and filters.until and filters.since > filters.until:
        raise Invalid("since must not be after until")


def build(
    session: Session, kind: str, filters: ReportFilters, now: datetime | None = None
) -> Report:
    """The report of ``kind`` over ``filters``; `Invalid` for an unknown kind."""
    _checked(kind, filters)
    return BUILDERS[kind](session, filters, now or utcnow())


def customers_behind(
    session: Session, kind: str, filters: ReportFilters, cell: str, now: datetime | None = None
) -> tuple[Report, list[Customer]]:
    """The customers a figure of the report counts, by name, with the (empty) report they
    belong to for its title; `NotFound` for a figure the report cannot have."""
    _checked(kind, filters)
    ids = FINDERS[kind](session, filters, cell, now or utcnow())
    if ids is None:
        raise NotFound(f"the {kind} report has no figure '{cell}' with these filters")
    found = {c.id: c for c in session.scalars(select(Customer).where(Customer.id.in_(ids)))}
    report = Report(kind=cast(ReportKind, kind), title=TITLES[kind], filters=filters)
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
