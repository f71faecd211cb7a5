"""The /api routes: events in, customers and team from a CRM, tasks, enrollments.

Every route needs an API token. Bad input is a 4xx naming the field (422 from the models,
404 for unknown things, 409 for conflicts); Temporal being unreachable is a 503.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from sqlalchemy import select
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from engine.api.auth import Caller, hash_password, require_token
from engine.api.schemas import (
    EMAIL,
    ID,
    CancelIn,
    CustomerIn,
    CustomerOut,
    EnrollIn,
    EnrollmentOut,
    EventBatch,
    EventIn,
    EventResult,
    EventsResponse,
    SkipIn,
    TaskComplete,
    TaskOut,
    TaskReassign,
    TeamMemberIn,
)
from engine.api.services import Services
from engine.enrollment import enroll
from engine.errors import AlreadyEnrolled, ConflictError
from engine.messages import CancelRequest, EnrollmentSnapshot, SkipRequest, TaskCompletion
from engine.statuses import TaskStatus
from engine.store import repository
from engine.store.models import Customer, Enrollment, Task, TeamMember


def _renderable(error: dict[str, Any]) -> dict[str, Any]:
    """A validation error that can be rendered as JSON, so that a 422 never turns into a
    500 while being written: an echoed input that is not JSON (NaN, a lone surrogate) is
    left out, and such characters in a field name are shown escaped."""

    def renders(value: Any) -> bool:
        try:
            json.dumps(value, allow_nan=False, ensure_ascii=False, default=str).encode()
        except ValueError:
            return False
        return True

    if renders(error):
        return error
    fixed = dict(error)
    if not renders(fixed.get("input")):
        fixed["input"] = "(not shown: not valid JSON)"
    fixed["loc"] = tuple(
        p.encode("utf-8", "backslashreplace").decode() if isinstance(p, str) else p
        for p in error.get("loc", ())
    )
    return fixed


class _Route(APIRoute):
    """An API route whose 422 answers can always be rendered."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                raise RequestValidationError([_renderable(e) for e in exc.errors()]) from None

        return handle


router = APIRouter(prefix="/api", dependencies=[Depends(require_token)], route_class=_Route)
Authed = Annotated[Caller, Depends(require_token)]


def services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many rows.")]
StatusFilter = Annotated[str | None, Query(alias="status", max_length=32)]
CustomerId = Annotated[str, Path(min_length=1, max_length=255, pattern=ID)]


# -- events ------------------------------------------------------------------------------
@router.post(
    "/events",
    response_model=EventsResponse,
    status_code=status.HTTP_202_ACCEPTED,
    responses={404: {"description": "Unknown customer (the event is stored)"}},
    tags=["events"],
)
async def post_events(body: EventIn | EventBatch, svc: Svc, response: Response) -> EventsResponse:
    """Post one event or a batch (`{"events": [...]}`); idempotent by event `id`.

    Each event is stored, sent to the customer's running enrollments (milestones, goal,
    exit) and starts the playbooks it triggers. An event for an unknown customer is stored
    and answered 404 (or reported per item in a batch), never lost.
    """
    events = body.events if isinstance(body, EventBatch) else [body]
    results = []
    for event in events:
        try:
            routed = await svc.router.handle(
                event.id, event.customer_id, event.name, event.at, event.properties
            )
        except RPCError as exc:
            raise HTTPException(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                f"Temporal is unavailable: {exc.message}; events up to {event.id} are stored",
            ) from None
        results.append(
            EventResult(
                id=routed.id,
                status=routed.status,
                signalled=routed.signalled,
                enrolled=routed.enrolled,
                notes=routed.notes,
            )
        )
    if isinstance(body, EventIn) and results[0].status == "unknown_customer":
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"unknown customer '{body.customer_id}'; the event was stored "
            "and will not be routed until the customer exists",
        )
    return EventsResponse(results=results)


# -- customers and team ----------------------------------------------------------------------
def customer_out(customer: Customer) -> CustomerOut:
    return CustomerOut(
        id=customer.id,
        name=customer.name,
        segment=customer.segment,
        timezone=customer.timezone,
        owner=customer.owner_email,
        renewal_date=customer.renewal_date,
        health_score=customer.health_score,
        attributes=dict(customer.attributes or {}),
        tags=list(customer.tags or []),
        contacts=[
            {
                "email": c.email,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "role": c.role,
                "unsubscribed": c.unsubscribed,
            }
            for c in customer.contacts
        ],  # type: ignore[misc]
    )


@router.put("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"])
def put_customer(customer_id: CustomerId, body: CustomerIn, svc: Svc) -> CustomerOut:
    """Create or update a customer (and upsert its contacts) from a CRM."""
    data: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"owner", "contacts"})
    if "owner" in body.model_fields_set:
        data["owner_email"] = body.owner
    if body.contacts is not None:
        data["contacts"] = [c.model_dump(exclude_unset=True) for c in body.contacts]
    try:
        payload = repository.CustomerData(id=customer_id, **data)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    with svc.sessions.begin() as session:
        repository.upsert_customer(session, payload)
    with svc.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        assert customer is not None
        return customer_out(customer)


@router.get("/customers/{customer_id}", response_model=CustomerOut, tags=["customers"])
def get_customer(customer_id: str, svc: Svc) -> CustomerOut:
    with svc.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        if customer is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer '{customer_id}'")
        return customer_out(customer)


@router.put("/team/{email}", status_code=status.HTTP_204_NO_CONTENT, tags=["customers"])
def put_team_member(
    email: Annotated[str, Path(pattern=EMAIL, max_length=320)], body: TeamMemberIn, svc: Svc
) -> None:
    """Create or update a CSM, manager or admin (and optionally their UI password)."""
    with svc.sessions.begin() as session:
        member = session.get(TeamMember, email.lower()) or TeamMember(email=email.lower())
        member.name = body.name
        member.manager_email = body.manager.lower() if body.manager else None
        member.roles = body.roles
        member.is_admin = body.is_admin
        if body.password:
            member.password_hash = hash_password(body.password)
        session.add(member)


# -- tasks -------------------------------------------------------------------------------
def task_out(task: Task) -> TaskOut:
    return TaskOut(
        id=task.id,
        enrollment_id=task.enrollment_id,
        playbook_id=task.playbook_id,
        step_id=task.step_id,
        customer_id=task.customer_id,
        assignee=task.assignee_email,
        title=task.title,
        description=task.description,
        due_at=task.due_at,
        priority=task.priority,
        outcomes=list(task.outcomes or []),
        status=task.status,
        outcome=task.outcome,
        escalation_of=task.escalation_of,
    )


@router.get("/tasks", response_model=list[TaskOut], tags=["tasks"])
def list_tasks(
    svc: Svc, assignee: str | None = None, status_: StatusFilter = None, limit: Limit = 200
) -> list[TaskOut]:
    query = select(Task).order_by(Task.due_at.is_(None), Task.due_at).limit(limit)
    if assignee:
        query = query.where(Task.assignee_email == assignee.lower())
    if status_:
        query = query.where(Task.status == status_)
    with svc.sessions() as session:
        return [task_out(t) for t in session.scalars(query)]


async def complete_and_signal(
    svc: Services, task_id: str, outcome: str, by: str, note: str | None
) -> Task:
    """Close the task in the store, then tell the waiting enrollment (shared with the UI)."""
    with svc.sessions.begin() as session:
        task = repository.get_task(session, task_id)
        if task is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task '{task_id}'")
        try:
            task = repository.complete_task(session, task_id, outcome, by, note=note)
        except ConflictError as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
        except ValueError as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    if task.enrollment_id and task.escalation_of is None:
        try:
            await svc.client.get_workflow_handle(task.enrollment_id).signal(
                "task_completed",
                TaskCompletion(task_id=task.id, outcome=outcome, note=note, completed_by=by),
            )
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE,
                    f"task completed, but Temporal is unavailable: {exc.message}",
                ) from None
    return task


@router.post("/tasks/{task_id}/complete", response_model=TaskOut, tags=["tasks"])
async def complete_task(task_id: str, body: TaskComplete, svc: Svc, caller: Authed) -> TaskOut:
    """Complete a task with one of its outcomes; the waiting enrollment moves on."""
    task = await complete_and_signal(
        svc, task_id, body.outcome, body.completed_by or f"api:{caller.name}", body.note
    )
    return task_out(task)


@router.post("/tasks/{task_id}/reassign", response_model=TaskOut, tags=["tasks"])
def reassign_task(task_id: str, body: TaskReassign, svc: Svc) -> TaskOut:
    with svc.sessions.begin() as session:
        task = repository.get_task(session, task_id)
        if task is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no task '{task_id}'")
        if task.status != TaskStatus.OPEN:
            raise HTTPException(status.HTTP_409_CONFLICT, f"task is {task.status}")
        task.assignee_email = body.assignee.lower()
        return task_out(task)


# -- enrollments -------------------------------------------------------------------------
def enrollment_out(row: Enrollment) -> EnrollmentOut:
    return EnrollmentOut(
        id=row.workflow_id,
        playbook=row.playbook_id,
        version=row.version,
        customer_id=row.customer_id,
        status=row.status,
        current_step=row.current_step,
        outcome=row.outcome,
        started_at=row.started_at,
        ended_at=row.ended_at,
    )


@router.get("/enrollments", response_model=list[EnrollmentOut], tags=["enrollments"])
def list_enrollments(
    svc: Svc,
    playbook: str | None = None,
    customer: str | None = None,
    status_: StatusFilter = None,
    limit: Limit = 200,
) -> list[EnrollmentOut]:
    query = select(Enrollment).order_by(Enrollment.started_at.desc()).limit(limit)
    if playbook:
        query = query.where(Enrollment.playbook_id == playbook)
    if customer:
        query = query.where(Enrollment.customer_id == customer)
    if status_:
        query = query.where(Enrollment.status == status_)
    with svc.sessions() as session:
        return [enrollment_out(e) for e in session.scalars(query)]


@router.post(
    "/enrollments",
    response_model=EnrollmentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["enrollments"],
)
async def post_enrollment(body: EnrollIn, svc: Svc) -> EnrollmentOut:
    """Enroll a customer in a playbook by hand (any trigger kind)."""
    plan = svc.project.plans.get(body.playbook)
    if plan is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no playbook '{body.playbook}'")
    with svc.sessions() as session:
        if not repository.customer_exists(session, body.customer_id):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer '{body.customer_id}'")
    try:
        workflow_id = await enroll(
            svc.client,
            plan,
            body.customer_id,
            task_queue=svc.settings.temporal_task_queue,
            use_search_attributes=svc.use_search_attributes,
        )
    except AlreadyEnrolled as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    with svc.sessions.begin() as session:
        row = repository.upsert_enrollment(
            session,
            workflow_id=workflow_id,
            playbook_id=plan.playbook,
            version=plan.version,
            customer_id=body.customer_id,
        )
        return enrollment_out(row)


@router.get(
    "/enrollments/{enrollment_id:path}/status",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
)
async def enrollment_status(enrollment_id: str, svc: Svc) -> EnrollmentSnapshot:
    """Where an enrollment stands now (asks the workflow)."""
    try:
        return await svc.client.get_workflow_handle(enrollment_id).query(
            "status", result_type=EnrollmentSnapshot
        )
    except WorkflowQueryFailedError as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, f"'{enrollment_id}' did not answer: {exc.message}"
        ) from None
    except RPCError as exc:
        code = (
            status.HTTP_404_NOT_FOUND
            if exc.status == RPCStatusCode.NOT_FOUND
            else status.HTTP_503_SERVICE_UNAVAILABLE
        )
        raise HTTPException(code, exc.message) from None


async def _update(
    svc: Services, enrollment_id: str, name: str, arg: Any = None
) -> EnrollmentSnapshot:
    handle = svc.client.get_workflow_handle(enrollment_id)
    try:
        args = [] if arg is None else [arg]
        return await handle.execute_update(name, *args, result_type=EnrollmentSnapshot)
    except WorkflowUpdateFailedError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc.cause or exc)) from None
    except RPCError as exc:
        code = (
            status.HTTP_404_NOT_FOUND
            if exc.status == RPCStatusCode.NOT_FOUND
            else status.HTTP_409_CONFLICT
        )
        raise HTTPException(code, exc.message) from None


@router.post(
    "/enrollments/{enrollment_id:path}/pause",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
)
async def pause(enrollment_id: str, svc: Svc) -> EnrollmentSnapshot:
    return await _update(svc, enrollment_id, "pause")


@router.post(
    "/enrollments/{enrollment_id:path}/resume",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
)
async def resume(enrollment_id: str, svc: Svc) -> EnrollmentSnapshot:
    return await _update(svc, enrollment_id, "resume")


@router.post(
    "/enrollments/{enrollment_id:path}/skip",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
)
async def skip(enrollment_id: str, body: SkipIn, svc: Svc) -> EnrollmentSnapshot:
    return await _update(
        svc, enrollment_id, "skip_to_step", SkipRequest(step=body.step, reason=body.reason)
    )


@router.post(
    "/enrollments/{enrollment_id:path}/cancel",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
)
async def cancel(
    enrollment_id: str, body: CancelIn, svc: Svc, caller: Authed
) -> EnrollmentSnapshot:
    return await _update(
        svc, enrollment_id, "cancel", CancelRequest(reason=body.reason, by=caller.name)
    )
