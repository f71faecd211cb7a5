"""Where enrollments stand: the per-playbook funnel and the per-customer timeline.

The funnel reads the `enrollments` projection only (cheap, no Temporal round trips). The
customer timeline merges what the store knows (emails, tasks, events) with the step records
of each enrollment, asked from the workflow itself with the ``status`` query; when Temporal
cannot be reached the page still shows the store's side and says what is missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowQueryRejectedError
from temporalio.service import RPCError

from engine.client.playbook import EnrollmentHandle
from engine.language.plan import CompiledPlan
from engine.messages import EnrollmentSnapshot, StepRecord
from engine.statuses import EnrollmentStatus, OutboxStatus, TaskStatus
from engine.store.models import Enrollment, Event, OutboxMessage, Task

QUERY_TIMEOUT_SECONDS = 3.0
# Step records the store shows better (with links): the outbox row, the task, the event.
_SHOWN_FROM_STORE = {"task", "task_completed", "event"}


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
    """Ask every enrollment's workflow where it stands, concurrently, each with a timeout."""
    return list(await asyncio.gather(*(_query(client, row) for row in rows)))


async def task_enrollment(client: Client, session: Session, task: Task) -> EnrollmentView | None:
    if not task.enrollment_id:
        return None
    row = session.get(Enrollment, task.enrollment_id)
    return None if row is None else await _query(client, row)


# -- the timeline ----------------------------------------------------------------------------
@dataclass
class TimelineItem:
    at: datetime
    kind: str  # step | email | task | task_done | event
    title: str
    detail: str = ""
    playbook: str | None = None
    step: str | None = None
    link: str | None = None
    status: str | None = None
    badges: list[str] = field(default_factory=list)


def _from_record(record: StepRecord, playbook: str) -> TimelineItem | None:
    if record.kind in _SHOWN_FROM_STORE or (
        record.kind == "email" and record.data.get("deliveries")
    ):
        return None
    return TimelineItem(
        at=record.at,
        kind="step",
        title=record.kind.replace("_", " "),
        detail=record.detail,
        playbook=playbook,
        step=record.step,
        status=record.kind,
    )


def _short(properties: dict) -> str:
    text = json.dumps(properties, sort_keys=True, default=str) if properties else ""
    return text if len(text) <= 160 else text[:157] + "..."


def _task_items(task: Task) -> list[TimelineItem]:
    """A task's creation and, once closed, its completion."""
    link = f"/tasks/{task.id}"
    created = TimelineItem(
        at=task.created_at,
        kind="task",
        title=task.title,
        detail=f"for {task.assignee_email or 'unassigned'}",
        playbook=task.playbook_id,
        step=task.step_id,
        link=link,
        status=task.status,
        badges=["escalation"] if task.escalation_of else [],
    )
    if task.completed_at is None:
        return [created]
    note = f": {task.note}" if task.note else ""
    done = TimelineItem(
        at=task.completed_at,
        kind="task_done",
        title=f"{task.title}: {task.outcome}",
        detail=f"by {task.completed_by}{note}",
        playbook=task.playbook_id,
        step=task.step_id,
        link=link,
        status=TaskStatus.COMPLETED,
    )
    return [created, done]


def customer_timeline(
    session: Session, customer_id: str, views: list[EnrollmentView], limit: int = 300
) -> list[TimelineItem]:
    """Steps, emails, tasks and events of one customer, newest first."""
    items: list[TimelineItem] = []
    for view in views:
        for record in view.status.records if view.status else []:
            item = _from_record(record, view.row.playbook_id)
            if item is not None:
                items.append(item)
    for m in session.scalars(select(OutboxMessage).where(OutboxMessage.customer_id == customer_id)):
        items.append(
            TimelineItem(
                at=m.created_at,
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
        items.extend(_task_items(t))
    for e in session.scalars(
        select(Event).where(Event.customer_id == customer_id).order_by(Event.at.desc()).limit(limit)
    ):
        items.append(TimelineItem(e.at, "event", e.name, _short(e.properties), status=e.status))
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]
