"""The local activities that read the store for the workflow: `decide`, `check_milestone`,
and `record_enrollment`, which keeps the store's enrollment projection current.

They run as local activities, so their results land in history and replay identically.
"""

from __future__ import annotations

from sqlalchemy import select
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
from engine.store import repository
from engine.store.context import decide
from engine.store.models import Event, Task


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
        return DecideResult(found=found, timezone=timezone, values=values, errors=errors)

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
            repository.upsert_enrollment(
                session,
                workflow_id=input.enrollment_id,
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
            if input.close_open_tasks:
                open_tasks = session.scalars(
                    select(Task).where(
                        Task.enrollment_id == input.enrollment_id, Task.status == TaskStatus.OPEN
                    )
                )
                for task in open_tasks:
                    repository.cancel_task(
                        session, task.id, note=f"enrollment ended: {input.outcome}"
                    )
