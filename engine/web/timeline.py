"""Where enrollments stand: the per-playbook funnel and the per-customer timeline.

The funnel reads the `enrollments` projection only (cheap, no Temporal round trips). The
customer timeline merges what the store knows (emails, tasks, events) with the step records
of each enrollment, asked from the workflow itself with the ``status`` query; when Temporal
cannot be reached the page still shows the store's side and says what is missing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from engine.client.playbook import EnrollmentHandle
from engine.language.plan import CompiledPlan
from engine.messages import EnrollmentSnapshot, StepRecord
from engine.statuses import EnrollmentStatus, OutboxStatus
from engine.store import repository
from engine.store.models import Enrollment, Event, HealthChange, MilestoneState, OutboxMessage, Task
from engine.web.words import Words, in_words

QUERY_TIMEOUT_SECONDS = 3.0
# Step records that are not news on the timeline: the store shows them better (with links:
# tasks, events, milestones), the enrollment rows show starts and ends, and waits are
# where the enrollment stands (its card), not something that happened.
_NOT_HAPPENINGS = {
    "task",
    "task_completed",
    "event",
    "milestone",
    "start",
    "wait",
    "continue_as_new",
    *(status.value for status in EnrollmentStatus),
}


# -- the funnel ------------------------------------------------------------------------------
@dataclass
class FunnelStep:
    id: str
    kind: str
    count: int
    known: bool = True  # False: a step of another version, no longer in the current plan


@dataclass
class Funnel:
    playbook: str
    name: str
    steps: list[FunnelStep]
    ended: list[tuple[str, str, int]]  # (status, outcome, count)

    @property
    def running(self) -> int:
        return sum(step.count for step in self.steps)

    @property
    def ended_total(self) -> int:
        return sum(count for _, _, count in self.ended)

    @property
    def widest(self) -> int:
        return max((step.count for step in self.steps), default=0) or 1


def funnels(session: Session, plans: dict[str, CompiledPlan]) -> list[Funnel]:
    """One funnel per playbook: running enrollments per step (plan order), ended outcomes."""
    at_step: dict[str, dict[str, int]] = {}
    for playbook, step, count in session.execute(
        select(Enrollment.playbook_id, Enrollment.current_step, func.count())
        .where(Enrollment.status == EnrollmentStatus.RUNNING)
        .group_by(Enrollment.playbook_id, Enrollment.current_step)
    ):
        at_step.setdefault(playbook, {})[step or "(starting)"] = count
    ended: dict[str, list[tuple[str, str, int]]] = {}
    for playbook, status, outcome, count in session.execute(
        select(Enrollment.playbook_id, Enrollment.status, Enrollment.outcome, func.count())
        .where(Enrollment.status != EnrollmentStatus.RUNNING)
        .group_by(Enrollment.playbook_id, Enrollment.status, Enrollment.outcome)
        .order_by(func.count().desc())
    ):
        ended.setdefault(playbook, []).append((status, outcome or status, count))
    result = []
    for playbook in sorted(set(plans) | set(at_step) | set(ended)):
        counts = dict(at_step.get(playbook, {}))
        plan = plans.get(playbook)
        steps = []
        if plan is not None:
            steps = [FunnelStep(s.id, s.kind, counts.pop(s.id, 0)) for s in plan.steps]
        steps += [FunnelStep(step, "?", n, known=False) for step, n in sorted(counts.items())]
        name = plan.name if plan else playbook
        result.append(Funnel(playbook, name, steps, ended.get(playbook, [])))
    return result


# -- a customer's enrollments ----------------------------------------------------------------
@dataclass
class EnrollmentView:
    """An enrollment as the store projects it, plus what the workflow answered (if it did)."""

    row: Enrollment
    status: EnrollmentSnapshot | None = None
    error: str | None = None

    @property
    def current_step(self) -> str | None:
        return self.status.current_step if self.status else self.row.current_step

    @property
    def waiting_for(self) -> str | None:
        return self.status.waiting_for if self.status else None

    @property
    def waiting_until(self) -> datetime | None:
        return self.status.waiting_until if self.status else None

    @property
    def waiting_words(self) -> str:
        """What the enrollment waits for, in words: the task's title, the milestone's name."""
        what = self.waiting_for or ""
        kind, _, subject = what.partition(" ")
        if kind == "task":
            return f"the task “{subject.strip(chr(39))}” to be completed"
        if kind == "milestone":
            return f"the milestone “{in_words(subject)}”"
        if kind == "event":
            return f"the event “{subject}”"
        if what == "send window":
            return "the customer's send window to open"
        if what == "time":
            return "a set time"
        return what

    @property
    def deadline_name(self) -> str:
        """What happens at `waiting_until`, named for what it is (not "deadline")."""
        kind = (self.waiting_for or "").partition(" ")[0]
        return {
            "task": "Escalates",
            "milestone": "Stops waiting",
            "event": "Stops waiting",
            "send": "Window opens",
            "time": "Goes on",
        }.get(kind, "Until")


async def _query(client: Client, row: Enrollment) -> EnrollmentView:
    try:
        status = await asyncio.wait_for(
            EnrollmentHandle.get(client, row.workflow_id).status(),
            QUERY_TIMEOUT_SECONDS,
        )
    except TimeoutError:
        return EnrollmentView(row, error="Temporal did not answer in time")
    except RPCError as exc:
        return EnrollmentView(row, error=f"Temporal: {exc.message}")
    except (WorkflowQueryFailedError, WorkflowQueryRejectedError) as exc:
        return EnrollmentView(row, error=f"status query failed: {exc}")
    return EnrollmentView(row, status)


async def enrollment_views(client: Client, rows: Iterable[Enrollment]) -> list[EnrollmentView]:
    """Ask every enrollment's workflow where it stands, concurrently, each with a timeout.

    Only the newest run of a workflow ID is asked (``rows`` newest first): Temporal answers
    for the latest run, so an older run of a re-enrolled customer shows its stored row.
    """
    asked: set[str] = set()
    views: list[Awaitable[EnrollmentView]] = []
    for row in rows:
        views.append(_stored(row) if row.workflow_id in asked else _query(client, row))
        asked.add(row.workflow_id)
    return list(await asyncio.gather(*views))


async def _stored(row: Enrollment) -> EnrollmentView:
    return EnrollmentView(row)


async def task_enrollment(client: Client, session: Session, task: Task) -> EnrollmentView | None:
    if not task.enrollment_id:
        return None
    row = repository.latest_enrollment(session, task.enrollment_id)
    return None if row is None else await _query(client, row)


# -- the timeline ----------------------------------------------------------------------------
@dataclass
class TimelineItem:
    at: datetime
    kind: str  # enrollment | step | email | task | task_done | milestone | health | event
    title: str
    detail: str = ""
    playbook: str | None = None
    step: str | None = None
    link: str | None = None
    status: str | None = None
    badges: list[str] = field(default_factory=list)
    properties: list[tuple[str, str]] = field(default_factory=list)  # shown as a <dl>


@dataclass
class Timeline:
    """What happened to a customer (newest first), and their raw usage events apart."""

    items: list[TimelineItem]
    usage: list[TimelineItem]  # events, newest first, of `usage_filter` if one is set
    usage_names: list[tuple[str, int]]  # every event name received, with its count
    usage_filter: str | None = None


def _from_record(record: StepRecord, playbook: str) -> TimelineItem | None:
    """A step record worth a line: escalations, timeouts, skips, failures. Starts and ends
    come from the enrollment rows, milestones, tasks, emails and events from the store."""
    if record.kind in _NOT_HAPPENINGS or (record.kind == "email" and record.data.get("deliveries")):
        return None
    return TimelineItem(
        at=record.at,
        kind="step",
        title=in_words(record.kind),
        detail=record.detail,
        playbook=playbook,
        step=record.step,
        status=record.kind,
    )


def _properties(properties: dict[str, Any] | None) -> list[tuple[str, str]]:
    """An event's properties as label/value pairs: nested values flattened with dots,
    lists joined, so no JSON reaches the page."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key in sorted(value):
                walk(f"{prefix}.{key}" if prefix else str(key), value[key])
        elif isinstance(value, list):
            if all(not isinstance(v, dict | list) for v in value):
                pairs.append((prefix, ", ".join(str(v) for v in value)))
            else:
                for index, item in enumerate(value, start=1):
                    walk(f"{prefix} {index}", item)
        else:
            text = "—" if value is None else str(value)
            pairs.append((prefix, text if len(text) <= 200 else text[:197] + "..."))

    walk("", properties or {})
    return pairs[:20]


def _task_items(task: Task, names: dict[str, str]) -> list[TimelineItem]:
    """A task's creation and, once closed, its completion."""
    link = f"/tasks/{task.id}"
    assignee = names.get(task.assignee_email or "", task.assignee_email or "nobody")
    # A cancellation has no time of its own on the task: it says why beside the creation.
    cancelled = f"; cancelled: {task.cancel_reason}" if task.cancel_reason else ""
    created = TimelineItem(
        at=task.created_at,
        kind="task",
        title=task.title,
        detail=f"for {assignee}{cancelled}",
        playbook=task.playbook_id,
        step=task.step_id,
        link=link,
        status=task.status,
        badges=["escalation"] if task.escalation_of else [],
    )
    if task.completed_at is None:
        return [created]
    note = f": {task.note}" if task.note else ""
    by = names.get(task.completed_by or "", task.completed_by or "the playbook")
    done = TimelineItem(
        at=task.completed_at,
        kind="task_done",
        title=f"{task.title}: {in_words(task.outcome or task.status)}",
        detail=f"by {by}{note}",
        playbook=task.playbook_id,
        step=task.step_id,
        link=link,
        status=task.status,
    )
    return [created, done]


def _enrollment_items(row: Enrollment, words: Words) -> list[TimelineItem]:
    name = words.playbook(row.playbook_id)
    items = [TimelineItem(row.started_at, "enrollment", f"Started “{name}”", status="running")]
    if row.ended_at is not None:
        outcome = in_words(row.outcome or row.status)
        items.append(TimelineItem(row.ended_at, "enrollment", f"“{name}” ended: {outcome}",
                                  status=row.status))  # fmt: skip
    return items


def customer_timeline(
    session: Session,
    customer_id: str,
    views: list[EnrollmentView],
    words: Words,
    *,
    names: dict[str, str] | None = None,
    usage: str | None = None,
    limit: int = 300,
) -> Timeline:
    """Enrollments, emails, tasks, milestones, health changes and the steps worth telling
    of one customer, newest first; usage events apart (only those named ``usage`` if set)."""
    names = names or {}
    items: list[TimelineItem] = []
    for view in views:
        items.extend(_enrollment_items(view.row, words))
        for record in view.status.records if view.status else []:
            item = _from_record(record, view.row.playbook_id)
            if item is not None:
                items.append(item)
    for m in session.scalars(select(OutboxMessage).where(OutboxMessage.customer_id == customer_id)):
        items.append(
            TimelineItem(
                # An email that waited stands where it was last decided (sent, suppressed...),
                # after what happened meanwhile (an unsubscribe), not where it first waited.
                at=m.updated_at if m.not_before else m.created_at,
                kind="email",
                title=m.subject,
                # Held back or skipped by the delivery policy: say why (docs/delivery.md).
                detail=f"to {m.contact_email}"
                + (f": {m.reason}" if m.not_before or m.status == OutboxStatus.SKIPPED else ""),
                playbook=m.playbook_id,
                step=m.step_id,
                link=f"/outbox/{m.id}",
                status=m.status,
            )
        )
    for t in session.scalars(select(Task).where(Task.customer_id == customer_id)):
        items.extend(_task_items(t, names))
    for ms in session.scalars(
        select(MilestoneState).where(MilestoneState.customer_id == customer_id)
    ):
        items.append(
            TimelineItem(ms.reached_at, "milestone", f"Reached “{in_words(ms.milestone)}”")
        )
    for h in session.scalars(select(HealthChange).where(HealthChange.customer_id == customer_id)):
        title = f"Health {h.new}" if h.old is None else f"Health {h.old} → {h.new}"
        worse = h.old is not None and h.new is not None and h.new < h.old
        items.append(TimelineItem(h.at, "health", title, badges=["dropped"] if worse else []))
    items.sort(key=lambda item: item.at, reverse=True)
    counts = session.execute(
        select(Event.name, func.count())
        .where(Event.customer_id == customer_id)
        .group_by(Event.name)
        .order_by(func.count().desc(), Event.name)
    ).all()
    query = select(Event).where(Event.customer_id == customer_id)
    if usage:
        query = query.where(Event.name == usage)
    events = [
        TimelineItem(e.at, "event", e.name, status=e.status, properties=_properties(e.properties))
        for e in session.scalars(query.order_by(Event.at.desc()).limit(limit))
    ]
    return Timeline(items[:limit], events, [(n, c) for n, c in counts], usage or None)
