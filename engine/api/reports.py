"""``/api/reports``: the reports as JSON or CSV, and the customers behind any figure.

Needs a token with the ``operate`` scope. The filters are query parameters (``since``,
``until``, ``segment``, ``playbook``, ``version``, ``start``); see docs/reports.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel

from engine.api.auth import Requires, require_token
from engine.scopes import Scope
from engine.services import Services, reports
from engine.services.reports import Report, ReportFilters, ReportKind

router = APIRouter(
    prefix="/api/reports",
    tags=["reports"],
    dependencies=[Depends(require_token), Depends(Requires(Scope.OPERATE))],
)
Filters = Annotated[ReportFilters, Query()]


class CustomerRef(BaseModel):
    id: str
    name: str
    segment: str | None = None
    health_score: int | None = None


class CustomersBehind(BaseModel):
    kind: ReportKind
    cell: str
    customers: list[CustomerRef]


def _services(request: Request) -> Services:
    return request.app.state.services


@router.get(
    "/{kind}",
    response_model=Report,
    responses={200: {"content": {"text/csv": {}}, "description": "The report (JSON or CSV)"}},
)
def get_report(
    kind: ReportKind,
    filters: Filters,
    request: Request,
    format: Literal["json", "csv"] = "json",
) -> Any:
    """One report; ``format=csv`` gives every table as one CSV (a ``table`` column first)."""
    with _services(request).sessions() as session:
        report = reports.build(session, kind, filters)
    if format == "csv":
        return Response(
            report.to_csv(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{kind}.csv"'},
        )
    return report


@router.get("/{kind}/customers", response_model=CustomersBehind)
def get_customers_behind(
    kind: ReportKind, cell: str, filters: Filters, request: Request
) -> CustomersBehind:
    """The customers a figure counts (its ``cell`` from the JSON report)."""
    with _services(request).sessions() as session:
        _, found = reports.customers_behind(session, kind, filters, cell)
        return CustomersBehind(
            kind=kind,
            cell=cell,
            customers=[
                CustomerRef(id=c.id, name=c.name, segment=c.segment, health_score=c.health_score)
                for c in found
            ],
        )
