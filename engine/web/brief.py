"""The prepared brief of a QBR task: what a CSM needs on one screen before the review.

Built from the store at the moment the task is opened (not when it was created), so it
shows the customer as they are now: usage over the last quarter by event name (with the
quarter before for comparison), health score, band and trend over the quarter with the
scorecard's measures that moved most, renewal date, milestones, the other open tasks and
the latest emails.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine.language.health import Scorecard
from engine.statuses import TaskStatus
from engine.store import health_trends
from engine.store.models import Customer, Event, MilestoneState, OutboxMessage, Task, utcnow

QUARTER_DAYS = 90
RECENT_EMAILS = 5
MOVED_MEASURES = 3


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
class MeasureMove:
    """A scorecard measure's points (0-100) at the start and the end of the quarter."""

    name: str
    label: str
    before: float
    after: float

    @property
    def change(self) -> float:
        return self.after - self.before


class _FromRow(BaseModel):
    """A line of the brief read from a store row (``BriefTask.model_validate(task)``)."""

    model_config = ConfigDict(from_attributes=True, frozen=True)


class BriefTask(_FromRow):
    id: str
    title: str
    assignee: str | None = Field(validation_alias="assignee_email")
    due_at: datetime | None
    priority: str
    playbook: str | None = Field(validation_alias="playbook_id")


class BriefEmail(_FromRow):
    id: int
    at: datetime = Field(validation_alias="created_at")
    to: str = Field(validation_alias="contact_email")
    subject: str
    status: str
    playbook: str | None = Field(validation_alias="playbook_id")


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
    # The scorecard's band (None without a scorecard), the score's change over the quarter
    # and the measures whose points moved most, from the health history.
    band: str | None = None
    trend: int | None = None
    moved: list[MeasureMove] = field(default_factory=list)

    @property
    def total_events(self) -> int:
        return sum(line.count for line in self.usage)

    @property
    def previous_total(self) -> int:
        return sum(line.previous for line in self.usage)

    @property
    def health_band(self) -> str:
        """The scorecard's band when the project has one; else 'healthy', 'watch' or 'at
        risk' (the thresholds of the renewal playbook's triage)."""
        if self.band is not None:
            return self.band
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


def moved_measures(
    session: Session, customer_id: str, since: date, card: Scorecard
) -> tuple[int | None, list[MeasureMove]]:
    """The score's change since ``since`` (first to last daily point) and the measures whose
    points changed most (known at both ends, biggest change first)."""
    points = health_trends.daily_points(session, customer_id, since)
    trend = health_trends.change_over(health_trends.Point(p.day, p.score) for p in points)
    if len(points) < 2:
        return trend, []
    first, last = points[0].measures or {}, points[-1].measures or {}
    moves = [
        MeasureMove(
            name,
            card.measures[name].label or name.replace("_", " ").capitalize()
            if name in card.measures
            else name,
            float(first[name]["points"]),
            float(m["points"]),
        )
        for name, m in last.items()
        if m.get("points") is not None and (first.get(name) or {}).get("points") is not None
    ]
    moves = [m for m in moves if m.change]
    moves.sort(key=lambda m: (-abs(m.change), m.name))
    return trend, moves[:MOVED_MEASURES]


def build_brief(
    session: Session,
    customer_id: str,
    *,
    now: datetime | None = None,
    days: int = QUARTER_DAYS,
    exclude_task: str | None = None,
    scorecard: Scorecard | None = None,
) -> QbrBrief | None:
    """The brief for ``customer_id`` as of ``now``; None if there is no such customer.

    ``exclude_task`` leaves the QBR task itself out of the customer's open tasks. With the
    project's ``scorecard`` the health shows its band, the trend and the measures that
    moved; without, the renewal triage's thresholds.
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
    band: str | None = None
    trend: int | None = None
    moved: list[MeasureMove] = []
    if scorecard is not None:
        trend, moved = moved_measures(
            session, customer_id, (now - timedelta(days=days)).date(), scorecard
        )
        band = customer.health_band or scorecard.band(customer.health_score)
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
        open_tasks=[BriefTask.model_validate(t) for t in open_tasks],
        recent_emails=[BriefEmail.model_validate(m) for m in emails],
        band=band,
        trend=trend,
        moved=moved,
    )
