"""The activities that change the customer: `update_customer` (attributes and tags) and
`enroll_customer` (start another playbook for them).

With the project's health scorecard, an update recomputes the customer's health in the same
transaction, as a save through the API does: a measure may read the fields it set. With a
Temporal client, an update emits its change as an API save does
(`engine.client.changes.emit_change`): the customer's running enrollments get the
``customer_changed`` signal and the deployed ``on_change`` playbooks it makes true start.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client

from activities.base import StoreActivities, require_customer
from activities.heartbeat import heartbeating
from engine.client.changes import ChangeTarget, change_plans, emit_change, snapshot_before
from engine.language.health import Scorecard
from engine.language.templates import render_text
from engine.messages import ActivityName, EnrollCustomerInput, UpdateCustomerInput
from engine.statuses import EventStatus
from engine.store import deployments, health, repository
from engine.store.context import customer_snapshot, evaluation_context

# (playbook, customer id, enrolling enrollment id) -> what happened, for the history.
Enroller = Callable[[str, str, str], Awaitable[str]]
# Told of each health an update step recomputed, and when (the simulator's timeline).
HealthWatcher = Callable[[health.Recorded, datetime], None]


class CustomerActivities(StoreActivities):
    """Customer data updates, and enrollments in other playbooks through ``enroller``; with
    a ``client``, updates emit their changes (enrollments started on ``task_queue``); with a
    ``scorecard``, they recompute health (``on_health`` told of each computation)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        enroller: Enroller | None = None,
        client: Client | None = None,
        task_queue: str | None = None,
        use_search_attributes: bool = True,
        scorecard: Scorecard | None = None,
    ) -> None:
        super().__init__(sessions)
        self.enroller = enroller
        self.client = client
        self.task_queue = task_queue
        self.use_search_attributes = use_search_attributes
        self.scorecard = scorecard
        self.on_health: HealthWatcher | None = None

    @activity.defn(name=ActivityName.UPDATE_CUSTOMER)
    async def update_customer(self, input: UpdateCustomerInput) -> None:
        """Set attributes and tags once per (enrollment, step, visit), then emit the change.

        A retry after the update was applied emits nothing: the data before it is gone.
        """
        target = self.change_target
        before = (
            await asyncio.to_thread(snapshot_before, self.sessions, input.customer_id, input.now)
            if target is not None
            else None
        )
        applied = await asyncio.to_thread(self._apply, input, activity.info())
        if not (applied and target is not None):
            return
        activity.heartbeat()
        with self.sessions() as session:
            plans = {p.playbook: p for p in change_plans(deployments.deployed_plans(session))}
        await emit_change(target, plans, input.customer_id, before, input.now)

    @property
    def change_target(self) -> ChangeTarget | None:
        """Where an update's change goes; None without a client (nothing is emitted). Built
        on each use, since the simulator replaces ``sessions`` between runs."""
        if self.client is None or self.task_queue is None:
            return None
        return ChangeTarget(self.client, self.sessions, self.task_queue, self.use_search_attributes)

    @heartbeating
    def _apply(self, input: UpdateCustomerInput, info: activity.Info) -> bool:
        """The update, in one transaction; False when this visit's update was applied before."""
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
                return False
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
            if self.scorecard is not None:
                session.flush()
                recorded = health.recompute(session, self.scorecard, customer.id, input.now)
                if recorded is not None and self.on_health is not None:
                    self.on_health(recorded, input.now)
        return True

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
