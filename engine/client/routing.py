"""Live event routing: each posted event stored once, then sent where it matters.

`EventRouter.handle` stores the event (`engine.store.events`, once per id), signals the
customer's running enrollments (milestones, goal, exit, `wait_for`) and starts the
deployed playbooks whose ``on_event`` trigger it matches, subject to their condition and
``reenroll`` gap. An event that enrolls nobody says why in its notes, per playbook whose
trigger names it, or that no deployed playbook triggers on it. The API and the CLI route
through the same deployed set (`engine.store.deployments.DeployedPlans`), so they give
the same answer. Date and schedule triggers are not live: see `engine.client.sweeps`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from engine.client.changes import change_plans, fire_changes, snapshot_before
from engine.client.enrollment import enroll, reenroll_refusal
from engine.client.playbook import EnrollmentHandle
from engine.errors import AlreadyEnrolled
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan, MilestonePlan
from engine.messages import EventSignal
from engine.store import health
from engine.store.context import condition_values, decide
from engine.store.events import Ingested, ingest_event


@dataclass
class RoutedEvent:
    """The answer to one posted event."""

    id: str
    status: str  # accepted | duplicate | unknown_customer
    signalled: list[str] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


PlanSource = Mapping[str, CompiledPlan] | Callable[[], Mapping[str, CompiledPlan]]
"""The plans to route with: a mapping, or a function that reads the deployed set (blocking,
called in a thread for each event, so a deploy takes effect on the next one)."""


class EventRouter:
    """Stores events and routes them to enrollments and triggers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        plans: PlanSource,
        milestones: Mapping[str, MilestonePlan] | Callable[[], Mapping[str, MilestonePlan]],
        task_queue: str,
        use_search_attributes: bool = True,
        clock_offset_seconds: float = 0.0,
        scorecard: Scorecard | None = None,
    ) -> None:
        self.sessions = sessions
        self.client = client
        self.plans = plans
        self.milestones = milestones
        self.task_queue = task_queue
        self.use_search_attributes = use_search_attributes
        # The simulator's shifted clock (see `EnrollmentInput`); zero live.
        self.clock_offset_seconds = clock_offset_seconds
        # The health scorecard: an event it measures recomputes the customer's score, and
        # the ``on_change`` triggers judge the change (engine/client/changes.py).
        self.scorecard = scorecard

    async def handle(
        self,
        event_id: str,
        customer_id: str,
        name: str,
        at: datetime | None,
        properties: dict[str, Any],
        now: datetime | None = None,
    ) -> RoutedEvent:
        """Store, signal and trigger; ``now`` (the wall clock unless given: the simulator
        passes its own) is when trigger conditions and ``reenroll`` gaps are judged."""
        now = now or datetime.now(UTC)
        at = at or now
        # The store is blocking (SQLAlchemy): in a thread, so a wait for SQLite's writer
        # lock does not stall every other request on the event loop.
        ingested = await asyncio.to_thread(
            self._ingest, event_id, customer_id, name, at, properties
        )
        if not ingested.known_customer:
            return RoutedEvent(
                event_id,
                "unknown_customer",
                notes=[f"no customer '{customer_id}'; the event is stored"],
            )
        if not ingested.new:
            return RoutedEvent(event_id, "duplicate", notes=["already received; ignored"])
        routed = RoutedEvent(event_id, "accepted")
        plans = await asyncio.to_thread(self._plans)
        signal = EventSignal(id=event_id, name=name, at=at, properties=properties)
        for workflow_id in ingested.enrollments:
            try:
                await EnrollmentHandle.get(self.client, workflow_id).send_event(signal)
                routed.signalled.append(workflow_id)
            except RPCError as exc:
                routed.notes.append(f"{workflow_id}: not signalled ({exc.message})")
        triggered = [
            plan
            for _, plan in sorted(plans.items())
            if plan.trigger is not None
            and plan.trigger.kind == "event"
            and plan.trigger.event == name
        ]
        for plan in triggered:
            await self._trigger(plan, customer_id, signal, routed, now)
        if not triggered:
            routed.notes.append(f"no deployed playbook triggers on {name}")
        await self._rescore(customer_id, name, plans, routed, now)
        return routed

    async def _rescore(
        self,
        customer_id: str,
        name: str,
        plans: Mapping[str, CompiledPlan],
        routed: RoutedEvent,
        now: datetime,
    ) -> None:
        """Recompute the customer's health when the event is measured, then fire the
        ``on_change`` triggers the new score makes true."""
        card = self.scorecard
        shares = card is not None and any(m.measure == "user_share" for m in card.measures.values())
        if card is None or (name not in card.event_names() and not shares):
            return
        if not change_plans(plans):
            await asyncio.to_thread(self._recompute, card, customer_id, now)
            return  # nothing judges the change: no snapshot before it either
        before = await asyncio.to_thread(snapshot_before, self.sessions, customer_id, now)
        await asyncio.to_thread(self._recompute, card, customer_id, now)
        started, notes = await fire_changes(
            self.client,
            self.sessions,
            plans,
            customer_id,
            before,
            now,
            self.task_queue,
            self.use_search_attributes,
            self.clock_offset_seconds,
        )
        routed.enrolled += started
        routed.notes += notes

    def _recompute(self, card: Scorecard, customer_id: str, now: datetime) -> None:
        with self.sessions.begin() as session:
            health.recompute(session, card, customer_id, now)

    def _plans(self) -> Mapping[str, CompiledPlan]:
        return self.plans() if callable(self.plans) else self.plans

    def _ingest(
        self,
        event_id: str,
        customer_id: str,
        name: str,
        at: datetime,
        properties: dict[str, Any],
    ) -> Ingested:
        with self.sessions.begin() as session:
            return ingest_event(
                session,
                event_id=event_id,
                customer_id=customer_id,
                name=name,
                at=at,
                properties=properties,
                milestones=dict(
                    self.milestones() if callable(self.milestones) else self.milestones
                ),
            )

    def _why_not_enroll(
        self, plan: CompiledPlan, customer_id: str, signal: EventSignal, now: datetime
    ) -> str | None:
        """Why the event's trigger does not enroll the customer, or None if it does."""
        assert plan.trigger is not None
        condition = plan.trigger.condition
        with self.sessions() as session:
            if condition:
                _, _, values, errors = decide(
                    session, customer_id, plan.playbook, [condition], now, signal
                )
                if values[0] is not True:
                    if errors[0]:
                        return f"trigger condition failed: {errors[0]}"
                    shown = condition_values(
                        session, customer_id, plan.playbook, condition, now, signal
                    )
                    return f"trigger condition {condition} is false" + (
                        f" with {shown}" if shown else ""
                    )
            return reenroll_refusal(session, plan, customer_id, now=now)

    async def _trigger(
        self,
        plan: CompiledPlan,
        customer_id: str,
        signal: EventSignal,
        routed: RoutedEvent,
        now: datetime,
    ) -> None:
        why = await asyncio.to_thread(self._why_not_enroll, plan, customer_id, signal, now)
        if why is not None:
            routed.notes.append(f"{plan.playbook}: not enrolled ({why})")
            return
        try:
            workflow_id = await enroll(
                self.client,
                plan,
                customer_id,
                task_queue=self.task_queue,
                trigger_event=signal,
                use_search_attributes=self.use_search_attributes,
                started_at=now,
                clock_offset_seconds=self.clock_offset_seconds,
            )
            routed.enrolled.append(workflow_id)
        except AlreadyEnrolled as exc:
            routed.notes.append(f"{plan.playbook}: not enrolled ({exc})")
