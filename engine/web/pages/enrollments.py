"""The enrollments screen: each playbook's funnel and the latest enrollments, filterable."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from engine.statuses import EnrollmentStatus
from engine.store.models import Customer, Enrollment
from engine.web.dependencies import ViewerDep, services_of
from engine.web.rendering import PAGE_SIZE, render
from engine.web.timeline import funnels

router = APIRouter()


@router.get("/enrollments")
def enrollments(
    request: Request,
    viewer: ViewerDep,
    playbook: str | None = None,
    step: str | None = None,
    status: str | None = None,
) -> Response:
    services = services_of(request)
    query = (
        select(Enrollment, Customer)
        .outerjoin(Customer, Customer.id == Enrollment.customer_id)
        .order_by(Enrollment.updated_at.desc())
        .limit(PAGE_SIZE)
    )
    if playbook:
        query = query.where(Enrollment.playbook_id == playbook)
    if step:
        query = query.where(
            Enrollment.current_step == step, Enrollment.status == EnrollmentStatus.RUNNING
        )
    if status:
        query = query.where(Enrollment.status == status)
    with services.sessions() as session:
        rows = session.execute(query).all()
        data = funnels(session, services.deployed.plans())
    return render(
        request,
        "enrollments.html",
        viewer,
        funnels=data,
        rows=rows,
        playbook=playbook,
        step=step,
        status=status,
    )
