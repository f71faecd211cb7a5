"""The activities that change the customer: `update_customer` (attributes and tags) and
`enroll_customer` (start another playbook for them).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity

from activities.base import StoreActivities, require_customer
from activities.heartbeat import heartbeating
from engine.language.templates import render_text
from engine.messages import ActivityName, EnrollCustomerInput, UpdateCustomerInput
from engine.statuses import EventStatus
from engine.store import repository
from engine.store.context import customer_snapshot, evaluation_context

# (playbook, customer id, enrolling enrollment id) -> what happened, for the history.
Enroller = Callable[[str, str, str], Awaitable[str]]


class CustomerActivities(StoreActivities):
    """Customer data updates, and enrollments in other playbooks through ``enroller``."""

    def __init__(self, sessions: sessionmaker[Session], enroller: Enroller | None = None) -> None:
        super().__init__(sessions)
        self.enroller = enroller

    @activity.defn(name=ActivityName.UPDATE_CUSTOMER)
    @heartbeating
    def update_customer(self, input: UpdateCustomerInput) -> None:
        """Set attributes and tags once per (enrollment, step, visit)."""
        info = activity.info()
        marker = (
            f"update:{input.enrollment_id}:{input.step_id}:{info.workflow_run_id}:"
            f"{info.activity_id}"
        )
        with self.sessions.begin() as session:
            customer = require_customer(session, input.customer_id)
            if not repository.record_event(
                session,
                marker,
                customer.id,
                "customer.updated",
                input.now,
                {"by": input.playbook, "step": input.step_id},
                status=EventStatus.APPLIED,
            ):
                return
            context = evaluation_context(
                customer_snapshot(session, customer, input.now.date()), input.now, input.playbook
            )
            attributes = dict(customer.attributes or {})
            for name, value in input.set.items():
                attributes[name] = _rendered_value(value, context)
            tags = [t for t in (customer.tags or []) if t not in input.remove_tags]
            tags += [t for t in input.add_tags if t not in tags]
            customer.attributes = attributes
            customer.tags = tags

    @activity.defn(name=ActivityName.ENROLL_CUSTOMER)
    async def enroll_customer(self, input: EnrollCustomerInput) -> str:
        """Start another playbook for this customer (already enrolled is not an error)."""
        if self.enroller is None:
            return f"would enroll in {input.playbook} (no enroller configured)"
        return await self.enroller(input.playbook, input.customer_id, input.enrollment_id)


def _rendered_value(value: Any, context: dict[str, Any]) -> Any:
    """Strings are templates; a result that reads as JSON (3, true) becomes that value."""
    if not isinstance(value, str) or "{" not in value:
        return value
    text = render_text(value, context)
    try:
        return json.loads(text)
    except ValueError:
        return text
