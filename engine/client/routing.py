"""Live event routing: each posted event stored once, then sent where it matters.

`EventRouter.handle_batch` (one event: `handle`) stores the events in one transaction
(`engine.store.events`, once per id), then signals each to the customer's running
enrollments whose plan listens to it (milestones, goal, exit, `wait_for`:
`engine.language.listening`) and starts the deployed playbooks whose ``on_event`` trigger it
matches, subject to their condition and ``reenroll`` gap. An event nobody listens to is
stored (and counted into the health measures that use it) at no Temporal cost. An event
that enrolls nobody says why in its notes, per playbook whose trigger names it, or that no
deployed playbook triggers on it. The API and the CLI route
through the same deployed set (`engine.store.deployments.DeployedPlans`), so they give
the same answer. Date and schedule triggers are not live: see `engine.client.sweeps`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RPCError

from engine.client.changes import (
    ChangeTarget,
    change_plans,
    emit_change,
    running_enrollments,
    snapshot_before,
)
from engine.client.enrollment import enroll, reenroll_refusal
from engine.client.playbook import EnrollmentHandle
from engine.errors import AlreadyEnrolled
from engine.language.health import Scorecard
from engine.language.plan import CompiledPlan, MilestonePlan
from engine.messages import EventSignal
from engine.store import health
from engine.store.context import condition_values, decide
from engine.store.db import (
    SQLITE_BUSY_TIMEOUT_MS,
    SQLITE_LOCK_POLL_MS,
    is_sqlite,
    poll_sqlite_lock,
    sqlite_locked_error,
    try_sqlite_lock,
)
from engine.store.events import IncomingEvent, Ingested, ingest_events
from engine.store.health import Recorded


@dataclass(slots=True)
class RoutedEvent:
    """The answer to one posted event."""

    id: str
    status: str  # accepted | duplicate | unknown_customer
    signalled: list[str] = field(default_factory=list)
    enrolled: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # The health recomputed for the event (a measured event, with a scorecard), else None.
    health: Recorded | None = None


@dataclass(frozen=True, slots=True)
class StoredBatch:
    """A batch just stored: the plans it was routed with, and what became of each event."""

    plans: Mapping[str, CompiledPlan]
    ingested: list[Ingested]


@dataclass(slots=True)
class Delivery:
    """A stored batch sorted: the answers, and what is left to do in Temporal."""

    plans: Mapping[str, CompiledPlan]
    triggers: dict[str, list[CompiledPlan]]
    """The plans each event name starts (``on_event`` triggers)."""
    answers: list[RoutedEvent] = field(default_factory=list)
    routes: list[tuple[IncomingEvent, Ingested, RoutedEvent]] = field(default_factory=list)
    """The new events some enrollment listens to or some plan triggers on, in order."""
    rescore: dict[str, tuple[set[str], RoutedEvent]] = field(default_factory=dict)
    """Per customer, the names of its new events and its last answer."""
    waits: bool = False
    """Whether delivering waits on anything (Temporal, or a health recompute in the store):
    if not, it is quick CPU work that the caller may do while holding `storing`."""


def _names(rescore: Mapping[str, tuple[set[str], RoutedEvent]]) -> set[str]:
    """Every event name of a batch's new events."""
    return set().union(*(names for names, _ in rescore.values()))


PlanSource = Mapping[str, CompiledPlan] | Callable[[Session], Mapping[str, CompiledPlan]]
"""The plans to route with: a mapping, or a function that reads the deployed set in the
batch's transaction (`DeployedPlans.plans`: called for each batch, so a deploy takes effect
on the next one)."""

MilestoneSource = (
    Mapping[str, MilestonePlan]
    | Callable[[Mapping[str, CompiledPlan]], Mapping[str, MilestonePlan]]
)
"""The milestones to record events against: a mapping, or a function of the plans the batch
is routed with (so the deployed set is read once a batch, not twice)."""

INLINE_BATCH = 50
"""Under SQLite, a batch of at most this many events is stored on the event loop (see
`EventRouter.store`); a bigger one in a thread."""


class EventRouter:
    """Stores events and routes them to enrollments and triggers."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        plans: PlanSource,
        milestones: MilestoneSource,
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
        self._sqlite = is_sqlite(sessions)
        self.lock_wait_seconds = SQLITE_BUSY_TIMEOUT_MS / 1000
        """How long an event write polls for SQLite's writer lock before it gives up
        ("database is locked": the API answers 503, to be retried)."""
        self.storing = asyncio.Lock()
        """Held while a batch is read, stored and sorted: one at a time in this process (see
        `handle_batch`). The API holds it from validating a body to sorting its events."""

    @property
    def change_target(self) -> ChangeTarget:
        """Where the changes the router's events make (a health move) go."""
        return ChangeTarget(
            self.client,
            self.sessions,
            self.task_queue,
            self.use_search_attributes,
            self.clock_offset_seconds,
        )

    async def handle(
        self,
        event_id: str,
        customer_id: str,
        name: str,
        at: datetime | None,
        properties: dict[str, Any],
        now: datetime | None = None,
    ) -> RoutedEvent:
        """Store, signal and trigger one event; see `handle_batch`."""
        now = now or datetime.now(UTC)
        event = IncomingEvent(event_id, customer_id, name, at or now, properties)
        return (await self.handle_batch([event], now))[0]

    async def handle_batch(
        self, events: Sequence[IncomingEvent], now: datetime | None = None
    ) -> list[RoutedEvent]:
        """Store the events in one transaction, then signal the enrollments that listen to
        each and start the playbooks each triggers; one answer per event, in order.

        ``now`` (the wall clock unless given: the simulator passes its own) is when trigger
        conditions and ``reenroll`` gaps are judged. The store's transaction is committed
        before anything waits on Temporal, so SQLite's writer lock is never held across a
        signal or a start. A customer's health is recomputed once per batch.

        Batches are stored and sorted one at a time in a process (`storing`), which is
        released before anything waits on Temporal or the store's health recompute (a batch
        that waits on neither is answered under it): two at once only compete for the GIL,
        and under SQLite the one holding the writer lock then holds it while it waits for
        the GIL, which kept the other API processes waiting twice as long
        (bench/RESULTS.md, "Events at product scale").
        """
        async with self.storing:
            delivery = self.sort(events, await self.store(events))
            if not delivery.waits:  # nothing for Temporal: done under the lock
                return await self.deliver(delivery, now)
        return await self.deliver(delivery, now)

    async def store(self, events: Sequence[IncomingEvent]) -> StoredBatch:
        """Store the events in one transaction (the first step of `handle_batch`; the
        caller holds `storing`).

        The store is blocking (SQLAlchemy). Under SQLite a small batch is stored right here,
        on the event loop: its write is about a millisecond of CPU that waits on nothing
        once the writer lock is held, and the lock is polled for without blocking
        (`_store_polling`). In a thread, each of its statements waited for the GIL again
        and the thread's answer for the loop, which under load cost more than the write
        (bench/RESULTS.md, "The event path"). A big batch, and any batch on another
        database (whose statements wait on the network), goes to a thread so that other
        requests go on meanwhile.
        """
        if self._sqlite and len(events) <= INLINE_BATCH:
            return await self._store_polling(events)
        return await asyncio.to_thread(self._ingest, events)

    async def _store_polling(self, events: Sequence[IncomingEvent]) -> StoredBatch:
        """`_ingest` on the event loop: while another writer holds SQLite's writer lock,
        the loop is given back for a millisecond between tries (`try_sqlite_lock`), instead
        of sleeping in SQLite's busy handler. Every try is made in the same transaction, on
        the same connection, so a refused one costs a statement, not a session."""
        deadline = time.monotonic() + self.lock_wait_seconds
        with self.sessions.begin() as session:
            while not try_sqlite_lock(session):
                if time.monotonic() > deadline:
                    raise sqlite_locked_error()
                await asyncio.sleep(0.001)
            return self._ingest_in(session, events)

    def sort(self, events: Sequence[IncomingEvent], stored: StoredBatch) -> Delivery:
        """Answer each stored event and set aside what needs Temporal (the second step of
        `handle_batch`, CPU only: the caller still holds `storing`)."""
        delivery = Delivery(stored.plans, _event_triggers(stored.plans))
        triggers = delivery.triggers
        for event, result in zip(events, stored.ingested, strict=True):
            if not result.known_customer:
                delivery.answers.append(
                    RoutedEvent(
                        event.id,
                        "unknown_customer",
                        notes=[f"no customer '{event.customer_id}'; the event is stored"],
                    )
                )
                continue
            if not result.new:
                delivery.answers.append(
                    RoutedEvent(event.id, "duplicate", notes=["already received; ignored"])
                )
                continue
            routed = RoutedEvent(event.id, "accepted")
            delivery.answers.append(routed)
            if result.enrollments or event.name in triggers:
                delivery.routes.append((event, result, routed))
            else:
                routed.notes.append(f"no deployed playbook triggers on {event.name}")
            names, _ = delivery.rescore.get(event.customer_id, (set(), routed))
            delivery.rescore[event.customer_id] = (names | {event.name}, routed)
        card = self.scorecard
        delivery.waits = bool(delivery.routes) or (
            card is not None and any(card.reads(name) for name in _names(delivery.rescore))
        )
        return delivery

    async def deliver(self, delivery: Delivery, now: datetime | None = None) -> list[RoutedEvent]:
        """Signal and start what the stored events reach, then rescore their customers (the
        last step of `handle_batch`, without `storing`); the answers, in order."""
        now = now or datetime.now(UTC)
        triggers = delivery.triggers
        for event, result, routed in delivery.routes:
            await self._route(event, result, triggers.get(event.name, []), routed, now)
            if event.name not in triggers:
                routed.notes.append(f"no deployed playbook triggers on {event.name}")
        for customer_id, (names, routed) in delivery.rescore.items():
            await self._rescore(customer_id, names, delivery.plans, routed, now)
        return delivery.answers

    async def _route(
        self,
        event: IncomingEvent,
        result: Ingested,
        triggered: list[CompiledPlan],
        routed: RoutedEvent,
        now: datetime,
    ) -> None:
        """Signal the event to the enrollments that listen, then start what it triggers."""
        signal = EventSignal(id=event.id, name=event.name, at=event.at, properties=event.properties)
        for workflow_id in result.enrollments:
            try:
                await EnrollmentHandle.get(self.client, workflow_id).send_event(signal)
                routed.signalled.append(workflow_id)
            except RPCError as exc:
                routed.notes.append(f"{workflow_id}: not signalled ({exc.message})")
        for plan in triggered:
            await self._trigger(plan, event.customer_id, signal, routed, now)

    async def _rescore(
        self,
        customer_id: str,
        names: set[str],
        plans: Mapping[str, CompiledPlan],
        routed: RoutedEvent,
        now: datetime,
    ) -> None:
        """Recompute the customer's health when one of the events (``names``) is measured,
        then tell the running enrollments of a moved score and fire the ``on_change``
        triggers it makes true; what that enrolls is told in ``routed`` (the customer's
        last event)."""
        card = self.scorecard
        if card is None or not any(card.reads(name) for name in names):
            return
        if not change_plans(plans) and not await asyncio.to_thread(self._running, customer_id):
            # Nothing judges the change and no enrollment is told of it (what `emit_change`
            # would find): no snapshots around it either.
            routed.health = await asyncio.to_thread(self._recompute, card, customer_id, now)
            return
        before = await asyncio.to_thread(snapshot_before, self.sessions, customer_id, now)
        routed.health = await asyncio.to_thread(self._recompute, card, customer_id, now)
        emitted = await emit_change(self.change_target, plans, customer_id, before, now)
        routed.enrolled += emitted.started
        routed.notes += emitted.notes

    def _recompute(self, card: Scorecard, customer_id: str, now: datetime) -> Recorded | None:
        with self.sessions.begin() as session:
            return health.recompute(session, card, customer_id, now)

    def _running(self, customer_id: str) -> bool:
        """Whether the customer has a running enrollment (to tell of a health move)."""
        with self.sessions() as session:
            return bool(running_enrollments(session, customer_id))

    def _plans(self, session: Session) -> Mapping[str, CompiledPlan]:
        return self.plans(session) if callable(self.plans) else self.plans

    def _milestones(self, plans: Mapping[str, CompiledPlan]) -> Mapping[str, MilestonePlan]:
        return self.milestones(plans) if callable(self.milestones) else self.milestones

    def _ingest(self, events: Sequence[IncomingEvent]) -> StoredBatch:
        """The events stored in one transaction, committed on return (blocking).

        Under SQLite the write polls for the writer lock (`poll_sqlite_lock`), tried again
        a millisecond after each refusal for up to `lock_wait_seconds`: the worker's
        activities write often, and SQLite's own waits, growing to 100 ms a try, left an
        event waiting behind them for hundreds of milliseconds (bench/RESULTS.md, "The
        tail"). The lock is taken before any read (`poll_sqlite_lock`), so a refused try
        has done no work, and the writes are short, so polling costs little.
        """
        deadline = time.monotonic() + self.lock_wait_seconds
        while True:
            try:
                return self._try_ingest(events, wait_ms=SQLITE_LOCK_POLL_MS)
            except OperationalError as exc:
                if not _locked(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(0.001)

    def _try_ingest(self, events: Sequence[IncomingEvent], wait_ms: int) -> StoredBatch:
        """One try of `_ingest`: under SQLite, "database is locked" when the writer lock
        is not free within ``wait_ms``."""
        with self.sessions.begin() as session:
            poll_sqlite_lock(session, wait_ms)
            return self._ingest_in(session, events)

    def _ingest_in(self, session: Session, events: Sequence[IncomingEvent]) -> StoredBatch:
        """Store the events in the session's transaction (the writer lock taken). The
        deployed plans are read in the same transaction: a session of their own cost as
        much as storing a lone event."""
        plans = self._plans(session)
        milestones = self._milestones(plans)
        return StoredBatch(
            plans, ingest_events(session, events, milestones=milestones, plans=plans)
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


def _locked(exc: OperationalError) -> bool:
    """Whether the store refused a write because SQLite's writer lock is taken."""
    return "database is locked" in str(exc)


def _event_triggers(plans: Mapping[str, CompiledPlan]) -> dict[str, list[CompiledPlan]]:
    """The plans an ``on_event`` trigger starts, by event name (each list by playbook id)."""
    out: dict[str, list[CompiledPlan]] = {}
    for _, plan in sorted(plans.items()):
        if plan.trigger is not None and plan.trigger.kind == "event" and plan.trigger.event:
            out.setdefault(plan.trigger.event, []).append(plan)
    return out
