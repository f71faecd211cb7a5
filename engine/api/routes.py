"""The /api routes: events in, customers and team from a CRM, tasks, enrollments.

Every route needs an API token holding the scope it names (`Requires`): `ingest` for
events and customers, `operate` for tasks and enrollments, `admin` for the team and tokens
(`engine.scopes`). Bad input is a 4xx naming the field (422 from the models,
404 for unknown things, 409 for conflicts); Temporal being unreachable is a 503. The
operations shared with the web UI and the CLI live in `engine.services`; their refusals
become status codes in `engine.api.errors`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import (
    APIRouter,
    Body,
    Depends,
    HTTPException,
    Path,
    Query,
    Request,
    Response,
    status,
)
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import SkipValidation, TypeAdapter
from sqlalchemy import select
from temporalio.service import RPCError

from engine.api.auth import Caller, Requires, hash_password, require_token
from engine.api.event_bodies import InvalidItem, PostedEvents, read_events
from engine.api.schemas import (
    EMAIL,
    ID,
    CalendarIn,
    CalendarOut,
    CancelIn,
    CustomerIn,
    CustomerOut,
    EnrollIn,
    EnrollmentOut,
    EventBatch,
    EventIn,
    EventsResponse,
    SkipIn,
    TaskCommentIn,
    TaskCommentOut,
    TaskComplete,
    TaskCompleteMany,
    TaskCompleteManyOut,
    TaskOut,
    TaskReassign,
    TaskSnooze,
    TeamMemberIn,
    TimeOff,
    TokenCreated,
    TokenIn,
    TokenOut,
)
from engine.client.changes import snapshot_before
from engine.client.routing import RoutedEvent
from engine.language.workdays import WEEKDAYS, parse_hours, parse_time_off
from engine.messages import EnrollmentSnapshot
from engine.scopes import Scope
from engine.services import Services, customers, enrollments, tasks, team, tokens
from engine.store import repository
from engine.store.events import IncomingEvent
from engine.store.models import Task, TeamMember


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
Ingest = [Depends(Requires(Scope.INGEST))]
Operate = [Depends(Requires(Scope.OPERATE))]
Admin = [Depends(Requires(Scope.ADMIN))]
Authed = Annotated[Caller, Depends(require_token)]


async def services(request: Request) -> Services:
    return request.app.state.services


Svc = Annotated[Services, Depends(services)]
_ANSWERS = TypeAdapter(list[RoutedEvent | InvalidItem])
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
    dependencies=Ingest,
)
async def post_events(
    body: Annotated[SkipValidation[EventIn | EventBatch], Body()], svc: Svc
) -> Response:
    """Post one event or a batch (`{"events": [...]}`); idempotent by event `id`.

    A batch is stored in one transaction; then each event is sent to the customer's running
    enrollments whose playbook listens to it (milestones, goal, exit, `wait_for`) and starts
    the playbooks it triggers. An event for an unknown customer is stored
    and answered 404 (or reported per item in a batch), never lost. A batch item that does
    not validate is answered `invalid` with its errors, and the others are kept; a batch
    without a valid item is a 422.
    """
    now = datetime.now(UTC)
    # Validating a batch is CPU work too: under the router's one-batch-at-a-time lock, with
    # storing and sorting it (see `EventRouter.handle_batch`); not waiting on Temporal.
    async with svc.router.storing:
        # The body is validated here (`read_events`), not by FastAPI: item by item in a batch.
        posted = read_events(body)
        events = posted.valid
        if not events:
            raise RequestValidationError(posted.errors())
        incoming = [
            IncomingEvent(e.id, e.customer_id, e.name, e.at or now, e.properties) for e in events
        ]
        delivery = svc.router.sort(incoming, await svc.router.store(incoming))
        if not delivery.waits:  # nothing for Temporal: answered under the lock too
            return _events_answer(posted, await svc.router.deliver(delivery, now))
    try:
        routed = await svc.router.deliver(delivery, now)
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Temporal is unavailable: {exc.message}; the events are stored",
        ) from None
    return _events_answer(posted, routed)


def _events_answer(posted: PostedEvents, routed: list[RoutedEvent]) -> Response:
    """The answer to a POST /api/events: 404 for a lone event of an unknown customer, else
    each item's answer, the invalid items in their places."""
    events = posted.valid
    if not posted.batch and routed[0].status == "unknown_customer":
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"unknown customer '{events[0].customer_id}'; the event was stored "
            "and will not be routed until the customer exists",
        )
    answers: list[RoutedEvent | InvalidItem] = list(routed)
    if len(events) < len(posted.items):  # the invalid items, in their places
        given = iter(routed)
        answers = [item if isinstance(item, InvalidItem) else next(given) for item in posted.items]
    # `EventsResponse` as JSON, written straight from the answers: building a model per
    # event, which FastAPI would then validate again, costs more than storing the batch.
    # `health` is the router's own record of a rescore, not part of the answer.
    return Response(
        b'{"results":' + _ANSWERS.dump_json(answers, exclude={"__all__": {"health"}}) + b"}",
        status.HTTP_202_ACCEPTED,
        media_type="application/json",
    )


# -- customers and team ----------------------------------------------------------------------
@router.put(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    tags=["customers"],
    dependencies=Ingest,
)
async def put_customer(customer_id: CustomerId, body: CustomerIn, svc: Svc) -> CustomerOut:
    """Create or update a customer (and upsert its contacts) from a CRM.

    When the renewal date, an attribute or the time zone changes, the customer's running
    enrollments are told, and their `wait: until` dates follow the change.
    """
    data: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"owner", "contacts"})
    if "owner" in body.model_fields_set:
        data["owner_email"] = body.owner
    if body.contacts is not None:
        data["contacts"] = [c.model_dump(exclude_unset=True) for c in body.contacts]
    try:
        payload = repository.CustomerData(id=customer_id, **data)
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    if payload.owner_email:
        with svc.sessions() as session:
            team.require_member(session, payload.owner_email)  # 422 for a stranger
    now = datetime.now(UTC)
    before = await asyncio.to_thread(snapshot_before, svc.sessions, customer_id, now)
    changed = customers.save_customer(svc.sessions, payload)
    try:
        await customers.notify_changed(svc.client, svc.sessions, customer_id, changed)
        await customers.react_to_save(
            svc.change_target,
            await asyncio.to_thread(svc.deployed.plans),
            svc.project.scorecard,
            customer_id,
            before,
            now,
            told=changed,
        )
    except RPCError as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            f"Temporal is unavailable: {exc.message}; the customer is saved, but its running "
            "enrollments were not told of the change",
        ) from None
    with svc.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        assert customer is not None
        return CustomerOut.model_validate(customer)


@router.get(
    "/customers/{customer_id}",
    response_model=CustomerOut,
    tags=["customers"],
    dependencies=[Depends(Requires(Scope.INGEST, Scope.OPERATE))],
)
def get_customer(customer_id: str, svc: Svc) -> CustomerOut:
    with svc.sessions() as session:
        customer = repository.get_customer(session, customer_id)
        if customer is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no customer '{customer_id}'")
        return CustomerOut.model_validate(customer)


TeamEmail = Annotated[str, Path(pattern=EMAIL, max_length=320)]


@router.put(
    "/team/{email}", status_code=status.HTTP_204_NO_CONTENT, tags=["customers"], dependencies=Admin
)
def put_team_member(email: TeamEmail, body: TeamMemberIn, svc: Svc) -> None:
    """Create or update a CSM, manager or admin (and optionally their UI password).

    A new password, or losing the admin flag or a role, ends the member's web sessions.
    """
    team.put_member(
        svc.sessions,
        email,
        team.MemberData(
            name=body.name,
            manager=body.manager.lower() if body.manager else None,
            roles=body.roles,
            is_admin=body.is_admin,
            password_hash=hash_password(body.password) if body.password else None,
        ),
    )


@router.put(
    "/team/{email}/calendar", response_model=CalendarOut, tags=["customers"], dependencies=Admin
)
def put_team_calendar(email: TeamEmail, body: CalendarIn, svc: Svc) -> CalendarOut:
    """Set when a member works (zone, days, hours, time off): their tasks' due dates and
    escalations fall on their working days."""
    try:
        hours = parse_hours(body.hours) if body.hours else None
    except ValueError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, str(exc)) from None
    data = team.CalendarData(
        timezone=body.timezone,
        working_days=[WEEKDAYS.index(d) for d in body.working_days]
        if body.working_days is not None
        else None,
        hours=hours,
        time_off=[(t.first, t.last) for t in body.time_off] if body.time_off is not None else None,
    )
    return _calendar_out(team.set_calendar(svc.sessions, email, data))


@router.get(
    "/team/{email}/calendar", response_model=CalendarOut, tags=["customers"], dependencies=Operate
)
def get_team_calendar(email: TeamEmail, svc: Svc) -> CalendarOut:
    return _calendar_out(team.get_member(svc.sessions, email))


def _calendar_out(member: TeamMember) -> CalendarOut:
    start, end = member.work_start_minute, member.work_end_minute
    return CalendarOut(
        email=member.email,
        timezone=member.timezone,
        working_days=[WEEKDAYS[d] for d in member.working_days],
        hours=f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}",
        time_off=[TimeOff(first=a, last=b) for a, b in parse_time_off(member.time_off)],
    )


@router.post(
    "/team/{email}/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["customers"],
    dependencies=Admin,
)
def disable_team_member(email: TeamEmail, svc: Svc) -> None:
    """Refuse the member's logins and end their web sessions now; their tasks stay theirs."""
    team.disable_member(svc.sessions, email)


@router.post(
    "/team/{email}/enable",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["customers"],
    dependencies=Admin,
)
def enable_team_member(email: TeamEmail, svc: Svc) -> None:
    """Let a disabled member log in again."""
    team.enable_member(svc.sessions, email)


@router.post(
    "/team/{email}/unlock",
    status_code=status.HTTP_204_NO_CONTENT,
    tags=["customers"],
    dependencies=Admin,
)
def unlock_team_member(email: TeamEmail, svc: Svc) -> None:
    """End a lockout (or backoff) of failed logins on this email before it runs out."""
    team.unlock_member(svc.sessions, email)


@router.delete(
    "/team/{email}", status_code=status.HTTP_204_NO_CONTENT, tags=["customers"], dependencies=Admin
)
def remove_team_member(email: TeamEmail, svc: Svc) -> None:
    """Remove a member: their web sessions end and their open tasks become unassigned."""
    team.remove_member(svc.sessions, email)


# -- tasks -------------------------------------------------------------------------------
@router.get("/tasks", response_model=list[TaskOut], tags=["tasks"], dependencies=Operate)
def list_tasks(
    svc: Svc, assignee: str | None = None, status_: StatusFilter = None, limit: Limit = 200
) -> list[TaskOut]:
    query = select(Task).order_by(Task.due_at.is_(None), Task.due_at).limit(limit)
    if assignee:
        query = query.where(Task.assignee_email == assignee.lower())
    if status_:
        query = query.where(Task.status == status_)
    with svc.sessions() as session:
        return [TaskOut.model_validate(t) for t in session.scalars(query)]


@router.post(
    "/tasks/{task_id}/complete", response_model=TaskOut, tags=["tasks"], dependencies=Operate
)
async def complete_task(task_id: str, body: TaskComplete, svc: Svc, caller: Authed) -> TaskOut:
    """Complete a task with one of its outcomes; the waiting enrollment moves on.

    It is recorded as completed by the caller: `api:<token name>`."""
    task = await tasks.complete_task(svc, task_id, body.outcome, caller.actor, body.note)
    return TaskOut.model_validate(task)


@router.post(
    "/tasks/{task_id}/reassign", response_model=TaskOut, tags=["tasks"], dependencies=Operate
)
def reassign_task(task_id: str, body: TaskReassign, svc: Svc, caller: Authed) -> TaskOut:
    """Give an open task to another team member (422 for someone not on the team)."""
    task = tasks.reassign_task(svc, task_id, body.assignee, by=caller.actor)
    return TaskOut.model_validate(task)


@router.post(
    "/tasks/complete",
    response_model=TaskCompleteManyOut,
    tags=["tasks"],
    dependencies=Operate,
)
async def complete_tasks(body: TaskCompleteMany, svc: Svc, caller: Authed) -> TaskCompleteManyOut:
    """Complete several tasks with one outcome; those that cannot be are listed as refused."""
    result = await tasks.complete_tasks(svc, body.task_ids, body.outcome, caller.actor, body.note)
    return TaskCompleteManyOut(
        completed=[TaskOut.model_validate(t) for t in result.completed], refused=result.refused
    )


@router.post("/tasks/{task_id}/undo", response_model=TaskOut, tags=["tasks"], dependencies=Operate)
async def undo_task_completion(task_id: str, svc: Svc, caller: Authed) -> TaskOut:
    """Reopen a task completed moments ago (within `TASK_UNDO_SECONDS`); 409 once too late."""
    return TaskOut.model_validate(await tasks.undo_completion(svc, task_id, caller.actor))


@router.post(
    "/tasks/{task_id}/snooze", response_model=TaskOut, tags=["tasks"], dependencies=Operate
)
def snooze_task(task_id: str, body: TaskSnooze, svc: Svc) -> TaskOut:
    """Hide an open task from the inbox until a time; its due date and escalations stay."""
    return TaskOut.model_validate(tasks.snooze_task(svc, task_id, body.until))


@router.get(
    "/tasks/{task_id}/comments",
    response_model=list[TaskCommentOut],
    tags=["tasks"],
    dependencies=Operate,
)
def list_task_comments(task_id: str, svc: Svc) -> list[TaskCommentOut]:
    return [TaskCommentOut.model_validate(c) for c in tasks.task_comments(svc, task_id)]


@router.post(
    "/tasks/{task_id}/comments",
    response_model=TaskCommentOut,
    status_code=201,
    tags=["tasks"],
    dependencies=Operate,
)
def comment_on_task(task_id: str, body: TaskCommentIn, svc: Svc, caller: Authed) -> TaskCommentOut:
    """Leave a note on a task, signed by the caller."""
    comment = tasks.comment_on_task(svc, task_id, caller.actor, body.body)
    return TaskCommentOut.model_validate(comment)


# -- enrollments -------------------------------------------------------------------------
@router.get(
    "/enrollments", response_model=list[EnrollmentOut], tags=["enrollments"], dependencies=Operate
)
def list_enrollments(
    svc: Svc,
    playbook: str | None = None,
    customer: str | None = None,
    status_: StatusFilter = None,
    limit: Limit = 200,
) -> list[EnrollmentOut]:
    with svc.sessions() as session:
        rows = repository.list_enrollments(
            session, playbook_id=playbook, customer_id=customer, status=status_, limit=limit
        )
        return [EnrollmentOut.model_validate(e) for e in rows]


@router.post(
    "/enrollments",
    response_model=EnrollmentOut,
    status_code=status.HTTP_201_CREATED,
    tags=["enrollments"],
    dependencies=Operate,
)
async def post_enrollment(body: EnrollIn, svc: Svc) -> EnrollmentOut:
    """Enroll a customer in a playbook by hand (any trigger kind)."""
    return EnrollmentOut.model_validate(
        await enrollments.enroll_customer(svc, body.playbook, body.customer_id)
    )


@router.get(
    "/enrollments/{enrollment_id:path}/status",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
    dependencies=Operate,
)
async def enrollment_status(enrollment_id: str, svc: Svc) -> EnrollmentSnapshot:
    """Where an enrollment stands now (asks the workflow)."""
    return await enrollments.enrollment_status(svc, enrollment_id)


@router.post(
    "/enrollments/{enrollment_id:path}/pause",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
    dependencies=Operate,
)
async def pause(enrollment_id: str, svc: Svc) -> EnrollmentSnapshot:
    return await enrollments.pause(svc, enrollment_id)


@router.post(
    "/enrollments/{enrollment_id:path}/resume",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
    dependencies=Operate,
)
async def resume(enrollment_id: str, svc: Svc) -> EnrollmentSnapshot:
    return await enrollments.resume(svc, enrollment_id)


@router.post(
    "/enrollments/{enrollment_id:path}/skip",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
    dependencies=Operate,
)
async def skip(enrollment_id: str, body: SkipIn, svc: Svc) -> EnrollmentSnapshot:
    return await enrollments.skip_to_step(svc, enrollment_id, body.step, body.reason)


@router.post(
    "/enrollments/{enrollment_id:path}/cancel",
    response_model=EnrollmentSnapshot,
    tags=["enrollments"],
    dependencies=Operate,
)
async def cancel(
    enrollment_id: str, body: CancelIn, svc: Svc, caller: Authed
) -> EnrollmentSnapshot:
    return await enrollments.cancel(svc, enrollment_id, body.reason, caller.actor)


# -- API tokens ----------------------------------------------------------------------------
@router.get("/tokens", response_model=list[TokenOut], tags=["tokens"], dependencies=Admin)
def list_tokens(svc: Svc) -> list[TokenOut]:
    """Every API token, revoked and expired ones included; never their secrets."""
    with svc.sessions() as session:
        return [TokenOut.of(info) for info in tokens.list_tokens(session)]


@router.post(
    "/tokens",
    response_model=TokenCreated,
    status_code=status.HTTP_201_CREATED,
    tags=["tokens"],
    dependencies=Admin,
)
def create_token(body: TokenIn, svc: Svc, caller: Authed) -> TokenCreated:
    """Create a token; the answer holds its secret, which is never shown again."""
    expires_at = tokens.expiry(body.expires)
    with svc.sessions.begin() as session:
        issued = tokens.issue(session, body.name, body.scopes, expires_at, caller.actor)
    return TokenCreated(token=issued.secret, **TokenOut.of(issued.info).model_dump())


@router.delete("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"], dependencies=Admin)
def revoke_token(token_id: Annotated[int, Path(ge=1, le=2**63 - 1)], svc: Svc) -> TokenOut:
    """Revoke a token at once (it is kept, as a record); revoking it again is harmless."""
    with svc.sessions.begin() as session:
        return TokenOut.of(tokens.revoke(session, token_id))
