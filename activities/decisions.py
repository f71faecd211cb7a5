"""The local activities that read the store for the workflow: `decide`, `check_milestone`,
and `record_enrollment`, which keeps the store's enrollment projection current.

They run as local activities, so their results land in history and replay identically.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio import activity

from activities.base import StoreActivities
from engine.language.milestones import matches
from engine.language.plan import MilestonePlan
from engine.messages import (
    ActivityName,
    CheckMilestoneInput,
    DecideInput,
    DecideResult,
    RecordEnrollmentInput,
)
from engine.statuses import EnrollmentStatus, TaskStatus
from engine.store import insight, repository
from engine.store.context import decide
from engine.store.models import Contact, Event, Task


class DecisionActivities(StoreActivities):
    """Reads of customer data at workflow time, and the enrollment projection."""

    @activity.defn(name=ActivityName.DECIDE)
    def decide(self, input: DecideInput) -> DecideResult:
        """Evaluate expressions over the customer's current data, at workflow time."""
        with self.sessions() as session:
            found, timezone, values, errors = decide(
                session,
                input.customer_id,
                input.playbook,
                input.expressions,
                input.now,
                input.event,
                input.enrollment.expression_view() if input.enrollment else None,
            )
            zones = (
                contact_zones(session, input.customer_id, timezone)
                if found and input.contact_zones
                else []
            )
        return DecideResult(
            found=found, timezone=timezone, values=values, errors=errors, zones=zones
        )

    @activity.defn(name=ActivityName.CHECK_MILESTONE)
    def check_milestone(self, input: CheckMilestoneInput) -> bool:
        """Whether the customer reached a milestone since ``since`` (from stored events)."""
        milestone = MilestonePlan.model_validate({**input.definition, "name": input.milestone})
        names = [n for n in (milestone.event, milestone.metric) if n]
        with self.sessions() as session:
            query = select(Event).where(
                Event.customer_id == input.customer_id, Event.name.in_(names)
            )
            if input.since is not None:
                query = query.where(Event.at >= input.since)
            count = sum(
                1
                for e in session.scalars(query)
                if matches(milestone, e.name, dict(e.properties or {}))
            )
        needed = milestone.count if milestone.event else 1
        return count >= needed

    @activity.defn(name=ActivityName.RECORD_ENROLLMENT)
    def record_enrollment(self, input: RecordEnrollmentInput) -> None:
        """Keep the store's enrollment projection (for reports and the UI) up to date."""
        ended = input.status != EnrollmentStatus.RUNNING
        with self.sessions.begin() as session:
            repository.save_enrollment(
                session,
                workflow_id=input.enrollment_id,
                enrollment_key=input.enrollment_key,
                playbook_id=input.playbook,
                version=input.version,
                customer_id=input.customer_id,
                status=input.status,
                cycle_key=input.cycle_key,
                # An ended enrollment stands nowhere: "end" rather than its last wait step.
                current_step="end" if ended else input.current_step,
                outcome=input.outcome,
                started_at=input.at if input.started else None,
                ended_at=input.at if ended else None,
                new=input.started,
            )
            insight.record_step_visits(
                session,
                run_key=input.enrollment_key or input.enrollment_id,
                workflow_id=input.enrollment_id,
                playbook_id=input.playbook,
                version=input.version,
                customer_id=input.customer_id,
                visits=[(v.step, v.visit, v.at) for v in input.visits],
            )
            if input.close_open_tasks:
                open_tasks = session.scalars(
                    select(Task).where(
                        Task.enrollment_id == input.enrollment_id, Task.status == TaskStatus.OPEN
                    )
                )
                reason = _CANCEL_REASONS.get(input.status, "the enrollment ended")
                for task in open_tasks:
                    repository.cancel_task(
                        session,
                        task.id,
                        note=f"enrollment ended: {input.outcome}",
                        reason=f"{reason} ({input.outcome})",
                    )


def contact_zones(session: Session, customer_id: str, customer_zone: str) -> list[str]:
    """The time zones the customer's contacts live in (their own, else the customer's)."""
    own = session.scalars(select(Contact.timezone).where(Contact.customer_id == customer_id))
    return sorted({zone or customer_zone for zone in own})


# Why a task is cancelled when its enrollment is cut short, as the CSM reads it on the task.
_CANCEL_REASONS: dict[str, str] = {
    EnrollmentStatus.GOAL_REACHED: "the customer reached the playbook's goal",
    EnrollmentStatus.EXITED: "the customer left the playbook (exit condition)",
    EnrollmentStatus.CANCELLED: "the enrollment was cancelled",
    EnrollmentStatus.FAILED: "the enrollment failed",
    EnrollmentStatus.TERMINATED: "the enrollment was terminated",
}
