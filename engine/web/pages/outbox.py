"""The outbox: every email the engine sent or tried to send, and one email as sent."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import func, or_, select

from engine.statuses import OutboxStatus
from engine.store.models import Customer, OutboxMessage
from engine.web.dependencies import ViewerDep, services_of
from engine.web.rendering import PAGE_SIZE, error_page, render

router = APIRouter()
MAX_PAGE = 1_000_000


@router.get("/outbox")
def outbox(
    request: Request,
    viewer: ViewerDep,
    status: str = "",
    playbook: str = "",
    q: str = "",
    page: int = 1,
) -> Response:
    page = max(page, 1)
    if page > MAX_PAGE:  # an offset past what the database's integers hold
        return error_page(request, viewer, 400, f"There is no such page (at most {MAX_PAGE:,}).")
    query = select(OutboxMessage, Customer).outerjoin(
        Customer, Customer.id == OutboxMessage.customer_id
    )
    if status:
        query = query.where(OutboxMessage.status == status)
    if playbook:
        query = query.where(OutboxMessage.playbook_id == playbook)
    if q.strip():
        like = f"%{q.strip()}%"
        query = query.where(
            or_(OutboxMessage.contact_email.ilike(like), OutboxMessage.subject.ilike(like))
        )
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    with services_of(request).sessions() as session:
        rows = session.execute(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)).all()
        counts = dict(
            session.execute(
                select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
            ).all()
        )
        playbooks = sorted(
            p
            for p in session.scalars(select(OutboxMessage.playbook_id).distinct())
            if p is not None
        )
    statuses = [s.value for s in OutboxStatus] + sorted(
        set(counts) - {s.value for s in OutboxStatus}
    )
    return render(
        request,
        "outbox.html",
        viewer,
        rows=rows[:PAGE_SIZE],
        more=len(rows) > PAGE_SIZE,
        page=page,
        counts=counts,
        statuses=statuses,
        playbooks=playbooks,
        status=status,
        playbook=playbook,
        q=q,
    )


@router.get("/outbox/{message_id}")
def outbox_message(request: Request, message_id: int, viewer: ViewerDep) -> Response:
    with services_of(request).sessions() as session:
        message = session.get(OutboxMessage, message_id)
        if message is None:
            return error_page(request, viewer, 404, f"There is no email {message_id}.")
        customer = session.get(Customer, message.customer_id) if message.customer_id else None
    return render(request, "outbox_message.html", viewer, message=message, customer=customer)
