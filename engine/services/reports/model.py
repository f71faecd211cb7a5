"""The shape every report takes: filters in, tables of figures out, customers behind each.

One shape for five reports, so the API (JSON), CSV export, the terminal and the web pages
render any of them the same way. A figure that counts customers carries a `cell` key; the
customers behind it are found when asked for (`customers_behind`), not kept with the
report.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Float, SQLColumnExpression, cast, func
from sqlalchemy.orm import Session

ReportKind = Literal["funnel", "ttv", "email", "tasks", "portfolio"]
KINDS: tuple[ReportKind, ...] = ("funnel", "ttv", "email", "tasks", "portfolio")
TITLES: dict[str, str] = {
    "funnel": "Funnel",
    "ttv": "Time to value",
    "email": "Email performance",
    "tasks": "Task performance",
    "portfolio": "Portfolio",
}


class ReportFilters(BaseModel):
    """What a report covers. Dates are inclusive UTC days; None means no bound.

    The date range applies to when enrollments started (funnel), the customer's start
    (time to value), when emails were queued (email) and tasks created (tasks); the
    portfolio is a picture of today and takes only the segment.
    """

    since: date | None = None
    until: date | None = None
    segment: str | None = None
    playbook: str | None = None
    version: str | None = Field(None, description="A playbook version, or its first characters.")
    start: Literal["customer", "enrollment"] = Field(
        "customer",
        description="Time to value counts from the customer's creation or first enrollment.",
    )
    page: int = Field(1, ge=1, description="Which page of a paged table (the renewals).")

    def query(self) -> dict[str, str]:
        """The filters that are set, as query-string parameters."""
        data = self.model_dump(mode="json", exclude_none=True)
        if data.get("start") == "customer":
            del data["start"]
        if data.get("page") == 1:
            del data["page"]
        return {k: str(v) for k, v in data.items()}

    def query_at(self, page: int) -> dict[str, str]:
        """`query` for another page of a paged table."""
        return self.model_copy(update={"page": page}).query()


class Cell(BaseModel):
    """One figure or label; `cell` names the customers behind it, when it counts some."""

    value: int | float | str | None = None
    cell: str | None = None


class Column(BaseModel):
    key: str
    label: str
    kind: Literal["text", "count", "rate", "number"] = "count"


class Chart(BaseModel):
    """How to draw a table: bars of `series` columns labelled by the `label` column."""

    type: Literal["bar", "hbar", "stacked"] = "bar"
    label: str
    series: list[str]
    title: str


class Pager(BaseModel):
    """Where a paged table stands: this page of `pages`, `total` rows in all."""

    page: int
    pages: int
    total: int


class Table(BaseModel):
    key: str
    title: str
    pager: Pager | None = Field(None, description="Set when the rows are one page of more.")
    entered: Cell | None = Field(None, description="Funnel only: the runs that entered.")
    columns: list[Column]
    rows: list[dict[str, Cell]] = Field(default_factory=list)
    chart: Chart | None = None
    notes: list[str] = Field(default_factory=list)


class Report(BaseModel):
    kind: ReportKind
    title: str
    filters: ReportFilters
    tables: list[Table] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)

    def to_csv(self) -> str:
        """Every table in one CSV: a ``table`` column, then the union of their columns."""
        keys: list[str] = []
        for table in self.tables:
            keys += [c.key for c in table.columns if c.key not in keys]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["table", *keys])
        for table in self.tables:
            for row in table.rows:
                writer.writerow([table.key, *(_plain(row.get(k)) for k in keys)])
        return out.getvalue()


def _plain(cell: Cell | None) -> Any:
    if cell is None or cell.value is None:
        return ""
    value = cell.value
    return round(value, 4) if isinstance(value, float) else value


def day_bounds(filters: ReportFilters) -> tuple[datetime | None, datetime | None]:
    """The filters' inclusive day range as [start, end) UTC datetimes."""
    start = datetime.combine(filters.since, time(), UTC) if filters.since else None
    end = (
        datetime.combine(filters.until, time(), UTC) + timedelta(days=1) if filters.until else None
    )
    return start, end


def rate(part: int, whole: int) -> float | None:
    """``part / whole``, or None when there is nothing to divide by."""
    return part / whole if whole else None


def days_between(
    session: Session, later: SQLColumnExpression[Any], earlier: SQLColumnExpression[Any]
) -> ColumnElement[Any]:
    """SQL for the days from ``earlier`` to ``later`` (fractional), on SQLite and
    PostgreSQL: worked out in the database, so a report reads one number per row instead
    of parsing two timestamps."""
    if session.get_bind().dialect.name == "sqlite":  # UTC text: julianday reads it
        return cast(func.julianday(later) - func.julianday(earlier), Float)
    return cast(func.extract("epoch", later - earlier), Float) / 86400.0


def utc_month(session: Session, at: SQLColumnExpression[Any]) -> ColumnElement[str]:
    """SQL for the UTC month (``YYYY-MM``) of a timestamp, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "sqlite":
        return func.strftime("%Y-%m", at)
    return func.to_char(func.timezone("UTC", at), "YYYY-MM")
