"""The prepared brief of a QBR task: what a CSM needs on one screen before the review.

Built from the store at the moment the task is opened (not when it was created), so it
shows the customer as they are now: usage over the last quarter by event name (with the
quarter before for comparison), health score, renewal date, milestones, the other open
tasks and the latest emails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.statuses import TaskStatus
from engine.store.models import Customer, Event, MilestoneState, OutboxMessage, Task, utcnow

QUARTER_DAYS = 90
RECENT_EMAILS = 5


@dataclass(frozen=True)
class UsageLine:
    """How often one event happened this quarter and the quarter before."""

    name: str
    count: int
    previous: int

    @property
    def change(self) -> int:
        return self.count - self.previous


@dataclass(frozen=True)
class BriefTask:
    id: str
    title: str
    assignee: str | None
    due_at: datetime | None
    priority: str
    playbook: str | None


@dataclass(frozen=True)
class BriefEmail:
    id: int
    at: datetime
    to: str
    subject: str
    status: str
    playbook: str | None


@dataclass(frozen=True)
class QbrBrief:
    customer_id: str
    customer_name: str
    segment: str | None
    health_score: int | None
    renewal_date: date | None
    days_to_renewal: int | None
    since: datetime
    until: datetime
    usage: list[UsageLine] = field(default_factory=list)
    milestones: list[tuple[str, datetime]] = field(default_factory=list)
    open_tasks: list[BriefTask] = field(default_factory=list)
    recent_emails: list[BriefEmail] = field(default_factory=list)

    @property
    def total_events(self) -> int:
        return sum(line.count for line in self.usage)

    @property
    def previous_total(self) -> int:
        return sum(line.previous for line in self.usage)

    @property
    def health_band(self) -> str:
        """'healthy', 'watch' or 'at risk' (the thresholds of the renewal playbook's triage)."""
        if self.health_score is None:
            return "not scored"
        if self.health_score >= 70:
            return "healthy"
        return "watch" if self.health_score >= 50 else "at risk"


def _counts(session: Session, customer_id: str, start: datetime, end: datetime) -> dict[str, int]:
    rows = session.execute(
        select(Event.name, func.count())
        .where(Event.customer_id == customer_id, Event.at >= start, Event.at < end)
        .group_by(Event.name)
    )
    return {name: count for name, count in rows}


def usage(session: Session, customer_id: str, now: datetime, days: int) -> list[UsageLine]:
    """Event counts by name over the last ``days`` and the ``days`` before, busiest first."""
    since = now - timedelta(days=days)
    current = _counts(session, customer_id, since, now)
    previous = _counts(session, customer_id, since - timedelta(days=days), since)
    lines = [
        UsageLine(name, current.get(name, 0), previous.get(name, 0))
        for name in set(current) | set(previous)
    ]
    return sorted(lines, key=lambda line: (-line.count, -line.previous, line.name))


def build_brief(
    session: Session,
    customer_id: str,
    *,
    now: datetime | None = None,
    days: int = QUARTER_DAYS,
    exclude_task: str | None = None,
) -> QbrBrief | None:
    """The brief for ``customer_id`` as of ``now``; None if there is no such customer.

    ``exclude_task`` leaves the QBR task itself out of the customer's open tasks.
    """
    customer = session.get(Customer, customer_id)
    if customer is None:
        return None
    now = now or utcnow()
    open_tasks = session.scalars(
        select(Task)
        .where(
            Task.customer_id == customer_id,
            Task.status == TaskStatus.OPEN,
            Task.id != (exclude_task or ""),
        )
        .order_by(Task.due_at.is_(None), Task.due_at)
    )
    emails = session.scalars(
        select(OutboxMessage)
        .where(OutboxMessage.customer_id == customer_id)
        .order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
        .limit(RECENT_EMAILS)
    )
    milestones = session.scalars(
        select(MilestoneState)
        .where(MilestoneState.customer_id == customer_id)
        .order_by(MilestoneState.reached_at)
    )
    return QbrBrief(
        customer_id=customer.id,
        customer_name=customer.name,
        segment=customer.segment,
        health_score=customer.health_score,
        renewal_date=customer.renewal_date,
        days_to_renewal=(
            (customer.renewal_date - now.date()).days if customer.renewal_date else None
        ),
        since=now - timedelta(days=days),
        until=now,
        usage=usage(session, customer_id, now, days),
        milestones=[(m.milestone, m.reached_at) for m in milestones],
        open_tasks=[
            BriefTask(t.id, t.title, t.assignee_email, t.due_at, t.priority, t.playbook_id)
            for t in open_tasks
        ],
        recent_emails=[
            BriefEmail(m.id, m.created_at, m.contact_email, m.subject, m.status, m.playbook_id)
            for m in emails
        ],
    )
