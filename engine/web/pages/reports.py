"""The report pages: one per report, with filters, charts, tables, CSV export and, behind
every figure, the customers it counts.

- ``/reports`` leads to the funnel; ``/reports/{kind}`` shows a report (``.csv`` exports
  it); ``/reports/{kind}/customers?cell=...`` lists the customers behind one figure.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.errors import ServiceError
from engine.services import reports
from engine.services.reports import KINDS, TITLES, ReportFilters
from engine.store.models import Customer, PlaybookVersion
from engine.web.charts import render_chart
from engine.web.dependencies import ViewerDep, services_of
from engine.web.rendering import SECURITY_HEADERS, error_page, render

router = APIRouter()


def _filters(request: Request) -> ReportFilters:
    """The filters in the query string; empty form fields mean no filter."""
    given = {k: v for k, v in request.query_params.items() if v.strip() and k != "cell"}
    return ReportFilters.model_validate(given)


@router.get("/reports")
def reports_index(viewer: ViewerDep) -> Response:
    return RedirectResponse("/reports/funnel", status_code=303)


@router.get("/reports/{kind}.csv")
def report_csv(request: Request, viewer: ViewerDep, kind: str) -> Response:
    try:
        filters = _filters(request)
        with services_of(request).sessions() as session:
            report = reports.build(session, kind, filters)
    except (ValidationError, ServiceError) as exc:
        return error_page(request, viewer, 400, _message(exc))
    return Response(
        report.to_csv(),
        media_type="text/csv; charset=utf-8",
        headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{kind}.csv"'},
    )


@router.get("/reports/{kind}")
def report_page(request: Request, viewer: ViewerDep, kind: str) -> Response:
    if kind not in KINDS:
        return error_page(request, viewer, 404, f"There is no report '{kind}'.")
    try:
        filters = _filters(request)
        with services_of(request).sessions() as session:
            report = reports.build(session, kind, filters)
            segments, playbooks = _choices(session)
    except (ValidationError, ServiceError) as exc:
        return error_page(request, viewer, 400, _message(exc))
    charts = {
        table.key: render_chart(table, table.chart)
        for table in report.tables
        if table.chart is not None and table.rows
    }
    query = urlencode(filters.query())
    return render(
        request,
        "reports.html",
        viewer,
        report=report,
        kinds=[(k, TITLES[k]) for k in KINDS],
        charts=charts,
        filters=filters,
        query=query,
        segments=segments,
        playbooks=playbooks,
    )


@router.get("/reports/{kind}/customers")
def report_customers(
    request: Request, viewer: ViewerDep, kind: str, cell: Annotated[str, Query()]
) -> Response:
    try:
        filters = _filters(request)
        with services_of(request).sessions() as session:
            report, customers = reports.customers_behind(session, kind, filters, cell)
    except (ValidationError, ServiceError) as exc:
        status = 404 if "no figure" in str(exc) or "no report" in str(exc) else 400
        return error_page(request, viewer, status, _message(exc))
    return render(
        request,
        "report_customers.html",
        viewer,
        report=report,
        cell=cell,
        customers=customers,
        back=f"/reports/{kind}?{urlencode(filters.query())}",
    )


def _choices(session: Session) -> tuple[list[str], list[str]]:
    """The segments and playbooks the filter form offers."""
    segments = [
        s
        for s in session.scalars(select(Customer.segment).distinct().order_by(Customer.segment))
        if s
    ]
    playbooks = list(
        session.scalars(
            select(PlaybookVersion.playbook_id).distinct().order_by(PlaybookVersion.playbook_id)
        )
    )
    return segments, playbooks


def _message(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "Bad filter: " + "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)
