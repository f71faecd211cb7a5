"""Enrollments: start one by hand and record it, ask where one stands, steer one.

Steering (pause, resume, skip, cancel) goes through `PlaybookWorkflow`'s updates, whose
validators refuse what the enrollment's state does not allow: that is a `Conflict`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from engine.client.enrollment import enroll, reenroll_allowed
from engine.client.playbook import EnrollmentHandle
from engine.errors import AlreadyEnrolled, Conflict, NotFound, Unavailable
from engine.messages import CancelRequest, EnrollmentSnapshot, SkipRequest
from engine.services.container import Services
from engine.store import repository
from engine.store.models import Enrollment


async def enroll_customer(svc: Services, playbook: str, customer_id: str) -> Enrollment:
    """Start ``customer_id`` in ``playbook``'s deployed version now and record the enrollment."""
    plan = await asyncio.to_thread(svc.deployed.plan, playbook)
    if plan is None:
        raise NotFound(f"no playbook '{playbook}' is deployed (playbook deploy {playbook})")
    with svc.sessions() as session:
        if not repository.customer_exists(session, customer_id):
            raise NotFound(f"no customer '{customer_id}'")
        if not reenroll_allowed(session, plan, customer_id):
            raise Conflict(
                f"{customer_id} was already enrolled in {playbook} (reenroll: {plan.reenroll})"
            )
    try:
        workflow_id = await enroll(
            svc.client,
            plan,
            customer_id,
            task_queue=svc.settings.temporal_task_queue,
            use_search_attributes=svc.use_search_attributes,
        )
    except AlreadyEnrolled as exc:
        raise Conflict(str(exc)) from None
    except RPCError as exc:
        raise Unavailable(f"Temporal refused the enrollment: {exc.message}") from None
    with svc.sessions.begin() as session:
        return repository.upsert_enrollment(
            session,
            workflow_id=workflow_id,
            playbook_id=plan.playbook,
            version=plan.version,
            customer_id=customer_id,
        )


async def enrollment_status(svc: Services, enrollment_id: str) -> EnrollmentSnapshot:
    """Where the enrollment stands now, as its workflow answers the `status` query."""
    try:
        return await EnrollmentHandle.get(svc.client, enrollment_id).status()
    except WorkflowQueryFailedError as exc:
        raise Conflict(f"'{enrollment_id}' did not answer: {exc.message}") from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(exc.message) from None
        raise Unavailable(exc.message) from None


async def _update(update: Awaitable[EnrollmentSnapshot]) -> EnrollmentSnapshot:
    """Run one update; a refusal by its validator, or an ended workflow, is a `Conflict`."""
    try:
        return await update
    except WorkflowUpdateFailedError as exc:
        raise Conflict(str(exc.cause or exc)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(exc.message) from None
        raise Conflict(exc.message) from None


async def pause(svc: Services, enrollment_id: str) -> EnrollmentSnapshot:
    """Hold the enrollment before its next step."""
    return await _update(EnrollmentHandle.get(svc.client, enrollment_id).pause())


async def resume(svc: Services, enrollment_id: str) -> EnrollmentSnapshot:
    """Let a paused enrollment go on."""
    return await _update(EnrollmentHandle.get(svc.client, enrollment_id).resume())


async def skip_to_step(
    svc: Services, enrollment_id: str, step: str, reason: str | None = None
) -> EnrollmentSnapshot:
    """Leave the current step (or wait) and continue at ``step``."""
    request = SkipRequest(step=step, reason=reason)
    return await _update(EnrollmentHandle.get(svc.client, enrollment_id).skip_to_step(request))


async def cancel(svc: Services, enrollment_id: str, reason: str, by: str) -> EnrollmentSnapshot:
    """Stop the enrollment now with outcome 'cancelled'."""
    request = CancelRequest(reason=reason, by=by)
    return await _update(EnrollmentHandle.get(svc.client, enrollment_id).cancel(request))
