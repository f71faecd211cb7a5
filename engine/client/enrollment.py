"""Starting enrollments: one workflow per (playbook, customer[, cycle]).

The enrollment ID is the workflow ID, so Temporal itself refuses a second concurrent
enrollment of the same customer in the same playbook; `reenroll` picks the ID reuse policy
for enrollments that already ended, and `reenroll_allowed` checks it against the store,
which remembers ended enrollments after Temporal's retention has dropped them. A
re-enrollment reuses the workflow ID, so each enrollment also gets its own key
(`EnrollmentInput.enrollment_key`), the prefix of its email and task idempotency keys.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.client.playbook import start_enrollment
from engine.errors import AlreadyEnrolled
from engine.language.plan import CompiledPlan
from engine.messages import (
    INTERPRETER_GENERATION,
    SA_CUSTOMER,
    SA_PLAYBOOK,
    SA_STEP,
    SA_VERSION,
    EnrollmentDates,
    EnrollmentInput,
    EventSignal,
)
from engine.store.models import Enrollment
from engine.store.repository import latest_enrollment


def enrollment_id(playbook: str, customer_id: str, cycle_key: str | None = None) -> str:
    """``<playbook>/<customer>`` plus ``/<cycle>`` for date- or schedule-triggered runs."""
    base = f"{playbook}/{customer_id}"
    return f"{base}/{cycle_key}" if cycle_key else base


def new_enrollment_key(workflow_id: str) -> str:
    """A run's own key: its workflow ID plus a random suffix (the ID repeats on re-enrollment)."""
    return f"{workflow_id}@{uuid.uuid4().hex}"


def search_attributes(plan: CompiledPlan, customer_id: str) -> TypedSearchAttributes:
    return TypedSearchAttributes(
        [
            SearchAttributePair(SearchAttributeKey.for_keyword(SA_PLAYBOOK), plan.playbook),
            SearchAttributePair(SearchAttributeKey.for_keyword(SA_VERSION), plan.short_version),
            SearchAttributePair(SearchAttributeKey.for_keyword(SA_CUSTOMER), customer_id),
            SearchAttributePair(SearchAttributeKey.for_keyword(SA_STEP), plan.start),
        ]
    )


async def enroll(
    client: Client,
    plan: CompiledPlan,
    customer_id: str,
    *,
    task_queue: str,
    cycle_key: str | None = None,
    trigger_event: EventSignal | None = None,
    use_search_attributes: bool = True,
    started_at: datetime | None = None,
    continue_as_new_after_events: int | None = None,
    enrollment_key: str | None = None,
    clock_offset_seconds: float = 0.0,
    dates: EnrollmentDates | None = None,
) -> str:
    """Start the enrollment; return its ID. Raise `AlreadyEnrolled` if it may not start.

    ``enrollment_key`` is the run's key (`new_enrollment_key` when not given), for a caller
    that records the run itself. ``clock_offset_seconds`` is for the simulator only (see
    `EnrollmentInput`).

    ``continue_as_new_after_events`` overrides the history length at which the enrollment
    continues as new (the default suits production; tests use a small value to exercise
    continue-as-new in a short run). ``dates`` are a date-triggered cycle's dates, which its
    steps' expressions see as ``enrollment``.
    """
    workflow_id = enrollment_id(plan.playbook, customer_id, cycle_key)
    reuse = (
        WorkflowIDReusePolicy.REJECT_DUPLICATE
        if plan.reenroll == "never"
        else WorkflowIDReusePolicy.ALLOW_DUPLICATE
    )
    payload = EnrollmentInput(
        plan=plan,
        customer_id=customer_id,
        enrollment_id=workflow_id,
        enrollment_key=enrollment_key or new_enrollment_key(workflow_id),
        cycle_key=cycle_key,
        trigger_event=trigger_event,
        use_search_attributes=use_search_attributes,
        started_at=started_at or datetime.now(UTC),
        clock_offset_seconds=clock_offset_seconds,
        dates=dates,
        generation=INTERPRETER_GENERATION,
    )
    if continue_as_new_after_events is not None:
        payload.continue_as_new_after_events = continue_as_new_after_events
    try:
        await start_enrollment(
            client,
            payload,
            id=workflow_id,
            task_queue=task_queue,
            id_reuse_policy=reuse,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=search_attributes(plan, customer_id)
            if use_search_attributes
            else None,
        )
    except WorkflowAlreadyStartedError:
        raise AlreadyEnrolled(
            f"{customer_id} is already enrolled in {plan.playbook}"
            + (f" for {cycle_key}" if cycle_key else "")
        ) from None
    return workflow_id


def reenroll_allowed(
    session: Session,
    plan: CompiledPlan,
    customer_id: str,
    cycle_key: str | None = None,
    now: datetime | None = None,
) -> bool:
    """Whether the store's past enrollment runs let the customer enroll (again) at ``now``.

    A date or schedule cycle (``cycle_key``) enrolls once, whatever the policy: with
    ``reenroll: always`` the sweep found the quarter still due once its first run had
    ended and enrolled the customer again for the same quarter. Then ``reenroll: never``:
    no run under the same ID (playbook, customer and cycle) was ever recorded; Temporal's
    ``REJECT_DUPLICATE`` alone forgets a closed workflow once its retention ends.
    ``reenroll: <gap>``: the playbook's newest run for the customer ended at least that
    long before ``now`` (the wall clock unless given: the simulator passes its own).
    ``always``: yes.
    """
    if cycle_key is not None or plan.reenroll == "never":
        workflow_id = enrollment_id(plan.playbook, customer_id, cycle_key)
        return latest_enrollment(session, workflow_id) is None
    if plan.reenroll != "after" or not plan.reenroll_after_seconds:
        return True
    last = session.scalars(
        select(Enrollment)
        .where(Enrollment.playbook_id == plan.playbook, Enrollment.customer_id == customer_id)
        .order_by(Enrollment.started_at.desc(), Enrollment.updated_at.desc())
    ).first()
    if last is None:
        return True
    if last.ended_at is None:
        return False
    now = now or datetime.now(UTC)
    return now - last.ended_at >= timedelta(seconds=plan.reenroll_after_seconds)


def reenroll_refusal(
    session: Session,
    plan: CompiledPlan,
    customer_id: str,
    cycle_key: str | None = None,
    now: datetime | None = None,
) -> str | None:
    """Why `reenroll_allowed` says no, in words (None when it says yes)."""
    if reenroll_allowed(session, plan, customer_id, cycle_key, now=now):
        return None
    if cycle_key is not None and plan.reenroll != "never":
        return f"already enrolled for {cycle_key}; a cycle enrolls once"
    if plan.reenroll == "never":
        return "already enrolled once; reenroll: never"
    last = session.scalars(
        select(Enrollment)
        .where(Enrollment.playbook_id == plan.playbook, Enrollment.customer_id == customer_id)
        .order_by(Enrollment.started_at.desc())
    ).first()
    assert last is not None and plan.reenroll_after_seconds
    if last.ended_at is None:
        return (
            f"already enrolled: {last.workflow_id} is {last.status} "
            f"since {last.started_at:%Y-%m-%d}"
        )
    again = last.ended_at + timedelta(seconds=plan.reenroll_after_seconds)
    return (
        f"reenroll gap: the last enrollment ended {last.ended_at:%Y-%m-%d}, "
        f"next possible {again:%Y-%m-%d %H:%M} UTC"
    )


__all__ = [
    "SA_STEP",
    "AlreadyEnrolled",
    "enroll",
    "enrollment_id",
    "new_enrollment_key",
    "reenroll_allowed",
    "reenroll_refusal",
]
