"""The customers screen and one customer's page: enrollments, milestones and timeline.

The list sorts by risk (the lowest band first, then the lowest score, then the steepest
fall over the trend line's 30 days) and draws each customer's trend from one query of the
health history for the whole page; the page charts the score by measure and lists the band
changes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select

from engine.language.health import Scorecard
from engine.statuses import EnrollmentStatus, TaskStatus
from engine.store import health_trends, repository
from engine.store.models import Customer, Enrollment, Task, utcnow
from engine.web.dependencies import ViewerDep, services_of
from engine.web.health_charts import history_chart, sparkline
from engine.web.rendering import error_page, render
from engine.web.security import team_members
from engine.web.timeline import customer_timeline, enrollment_views
from engine.web.words import Words

router = APIRouter()
TREND_DAYS = 30
HISTORY_DAYS = 180
LIMIT = 500
NO_SEGMENT = "(none)"


def bands_of(card: Scorecard | None) -> dict[str, float]:
    """The project's bands (name -> the score it starts at)."""
    return dict(card.bands) if card else health_trends.DEFAULT_BANDS


def band_of(customer: Customer, card: Scorecard | None) -> str:
    """The customer's band: the scorecard's, as last computed, else its score's (as
    `health_trends.band_sql`)."""
    if customer.health_band:
        return customer.health_band
    if customer.health_score is None:
        return health_trends.UNKNOWN
    starts = sorted(bands_of(card).items(), key=lambda b: b[1])
    return [name for name, start in starts if start <= customer.health_score][-1]


def band_order(card: Scorecard | None) -> list[str]:
    """Bands from the riskiest (the one starting at 0) up; unknown last."""
    ranked = sorted(bands_of(card).items(), key=lambda b: b[1])
    return [name for name, _ in ranked] + [health_trends.UNKNOWN]


@router.get("/customers")
def customers(
    request: Request,
    viewer: ViewerDep,
    q: str = "",
    owner: str | None = None,
    band: str = "",
    segment: str = "",
    sort: Literal["risk", "name"] = "risk",
) -> Response:
    card = services_of(request).project.scorecard
    query = select(Customer).limit(LIMIT)
    if sort == "risk":  # the riskiest LIMIT by score; ties and falls are sorted below
        query = query.order_by(
            Customer.health_score.is_(None), Customer.health_score, Customer.name
        )
    else:
        query = query.order_by(Customer.name)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(or_(Customer.name.ilike(like), Customer.id.ilike(like)))
    if owner == "me":
        query = query.where(Customer.owner_email == viewer.email)
    if segment:
        query = query.where(
            Customer.segment.is_(None) if segment == NO_SEGMENT else Customer.segment == segment
        )
    if band:
        query = query.where(health_trends.band_sql(bands_of(card)) == band)
    today = utcnow().date()
    since = today - timedelta(days=TREND_DAYS)
    with services_of(request).sessions() as session:
        rows = list(session.scalars(query))
        ids = [c.id for c in rows]
        lines = health_trends.trend_lines(session, ids, since)
        running = dict(
            session.execute(
                select(Enrollment.customer_id, func.count())
                .where(
                    Enrollment.customer_id.in_(ids), Enrollment.status == EnrollmentStatus.RUNNING
                )
                .group_by(Enrollment.customer_id)
            ).all()
        )
        open_tasks = dict(
            session.execute(
                select(Task.customer_id, func.count())
                .where(Task.customer_id.in_(ids), Task.status == TaskStatus.OPEN)
                .group_by(Task.customer_id)
            ).all()
        )
        names = {m.email: m.name for m in team_members(session)}
    bands = {c.id: band_of(c, card) for c in rows}
    falls = {c.id: health_trends.change_over(lines.get(c.id, [])) for c in rows}
    if sort == "risk":
        order = band_order(card)
        rank = {name: i for i, name in enumerate(order)}
        rows.sort(
            key=lambda c: (
                rank.get(bands[c.id], len(order) - 1),
                c.health_score if c.health_score is not None else 101,
                falls[c.id] or 0,
                c.name,
            )
        )
    return render(
        request,
        "customers.html",
        viewer,
        customers=rows,
        running=running,
        open_tasks=open_tasks,
        names=names,
        q=q,
        owner=owner,
        band=band,
        segment=segment,
        sort=sort,
        bands=bands,
        falls=falls,
        sparks={c.id: sparkline(lines.get(c.id, []), since, today) for c in rows},
        trend_days=TREND_DAYS,
    )


@router.get("/customers/{customer_id:path}")
async def customer_page(
    request: Request, customer_id: str, viewer: ViewerDep, usage: str = ""
) -> Response:
    services = services_of(request)
    with services.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        if customer is None:
            return error_page(request, viewer, 404, f"There is no customer {customer_id}.")
        rows = list(
            session.scalars(
                select(Enrollment)
                .where(Enrollment.customer_id == customer_id)
                .order_by(
                    Enrollment.status != EnrollmentStatus.RUNNING, Enrollment.started_at.desc()
                )
                .limit(10)
            )
        )
        milestones = repository.get_milestones(session, customer_id)
        names = {m.email: m.name for m in team_members(session)}
        today = utcnow().date()
        points = health_trends.daily_points(
            session, customer_id, today - timedelta(days=HISTORY_DAYS)
        )
        band_changes = health_trends.band_changes(session, customer_id)
    card = services.project.scorecard
    labels = {n: m.label or n.replace("_", " ") for n, m in card.measures.items()} if card else {}
    views = await enrollment_views(services.client, rows)
    with services.sessions() as session:
        timeline = customer_timeline(
            session,
            customer_id,
            views,
            Words(services.project.plans),
            names=names,
            usage=usage.strip() or None,
        )
    return render(
        request,
        "customer.html",
        viewer,
        customer=customer,
        views=views,
        milestones=sorted(milestones.values(), key=lambda m: m.reached_at),
        timeline=timeline,
        names=names,
        band=band_of(customer, card),
        health_chart=history_chart(points, labels),
        health_days=HISTORY_DAYS,
        band_changes=band_changes,
    )
