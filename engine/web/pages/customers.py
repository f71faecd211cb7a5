"""The customers screen and one customer's page: enrollments, milestones and timeline."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select

from engine.statuses import EnrollmentStatus, TaskStatus
from engine.store import repository
from engine.store.models import Customer, Enrollment, Task
from engine.web.dependencies import ViewerDep, services_of
from engine.web.rendering import error_page, render
from engine.web.security import team_members
from engine.web.timeline import customer_timeline, enrollment_views
from engine.web.words import Words

router = APIRouter()


@router.get("/customers")
def customers(
    request: Request, viewer: ViewerDep, q: str = "", owner: str | None = None
) -> Response:
    query = select(Customer).order_by(Customer.name).limit(500)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(or_(Customer.name.ilike(like), Customer.id.ilike(like)))
    if owner == "me":
        query = query.where(Customer.owner_email == viewer.email)
    with services_of(request).sessions() as session:
        rows = list(session.scalars(query))
        ids = [c.id for c in rows]
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
    )
