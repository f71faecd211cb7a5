"""The enrollments screen: each playbook's funnel and the latest enrollments, filterable;
and steering one enrollment (pause, resume, skip, cancel) for admins, with confirmation."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from engine.api.errors import status_code
from engine.services import ServiceError, enrollments
from engine.statuses import EnrollmentStatus
from engine.store import repository
from engine.store.models import Customer, Enrollment
from engine.web.dependencies import FormStr, ViewerDep, services_of
from engine.web.rendering import PAGE_SIZE, bad_form, error_page, flash_to, render
from engine.web.security import same
from engine.web.timeline import funnels
from engine.web.words import Words

router = APIRouter()


@router.get("/enrollments")
def enrollments_page(
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


# -- steering one enrollment (admins) ----------------------------------------------------------
ACTIONS = {
    "pause": "Pause",
    "resume": "Resume",
    "skip": "Skip",
    "cancel": "Cancel",
}


@router.post("/enrollments/control")
async def control(
    request: Request,
    viewer: ViewerDep,
    csrf: FormStr = "",
    enrollment: FormStr = "",
    action: FormStr = "",
    step: FormStr = "",
    reason: FormStr = "",
    confirm: FormStr = "",
) -> Response:
    """Pause, resume, skip or cancel an enrollment (admins only), after a confirmation page:
    the first post shows what will happen, the second (with ``confirm``) does it."""
    if not same(csrf, viewer.csrf):
        return bad_form(request, viewer)
    if not viewer.is_admin:
        return error_page(request, viewer, 403, "Only admins steer enrollments.")
    services = services_of(request)
    with services.sessions() as session:
        row = repository.latest_enrollment(session, enrollment)
        customer = session.get(Customer, row.customer_id) if row else None
    if row is None or action not in ACTIONS:
        return error_page(request, viewer, 404, f"There is no enrollment {enrollment}.")
    back = f"/customers/{quote(row.customer_id)}"
    words = Words(services.project.plans)
    if confirm != "yes":
        return render(
            request,
            "enrollment_confirm.html",
            viewer,
            row=row,
            customer=customer,
            action=action,
            step=step,
            reason=reason,
            back=back,
        )
    try:
        if action == "pause":
            await enrollments.pause(services, row.workflow_id)
        elif action == "resume":
            await enrollments.resume(services, row.workflow_id)
        elif action == "skip":
            await enrollments.skip_to_step(
                services, row.workflow_id, step, reason.strip() or f"skipped by {viewer.email}"
            )
        else:
            await enrollments.cancel(
                services, row.workflow_id, reason.strip() or "cancelled in the UI", viewer.email
            )
    except ServiceError as exc:
        return error_page(request, viewer, status_code(exc), str(exc))
    done = {
        "pause": "Paused",
        "resume": "Resumed",
        "skip": f"Skipped to “{words.step(row.playbook_id, step)}” in",
        "cancel": "Cancelled",
    }[action]
    return flash_to(request, back, f"{done} “{words.playbook(row.playbook_id)}”.")
