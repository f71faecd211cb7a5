"""Backtesting playbook versions: the store's customers and recorded events replayed
through each version with the book simulator (`playbook backtest`).

`backtest` takes the customers and team in the store (`book_from_store`) and the events
recorded since ``since`` (their day counted from then), runs `simulate_book` once per
version with the project's playbook set to it, and sums up each run for that playbook:
emails and tasks per customer, how many enrollments reached the goal and how long it
took, and where customers stopped (their outcome, or the step a run still waits at). When
the store has no customers, the example book (``playbooks/examples/book``) and its events
are used.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from statistics import median

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.language.plan import CompiledPlan
from engine.project import Project
from engine.simulation.book import BookResult, simulate_book
from engine.simulation.book_inputs import Book, BookEvent, load_book, load_events
from engine.simulation.forecast import EXAMPLE_BOOK, book_from_store
from engine.statuses import EnrollmentStatus
from engine.store.models import Event


class BacktestSide(BaseModel):
    """One version's outcome over the book."""

    version: str
    customers: int
    enrollments: int
    emails_per_customer: float
    tasks_per_customer: float
    goal_rate: float  # of the playbook's enrollments
    median_days_to_goal: float | None
    stopped: dict[str, int] = Field(default_factory=dict)  # outcome, or what a run waits for


class Backtest(BaseModel):
    """Each version's outcome over the same customers and events."""

    playbook: str
    source: str
    start: datetime
    days: int
    events: int
    sides: list[BacktestSide]


def recorded_events(session: Session, since: datetime, customers: set[str]) -> list[BookEvent]:
    """The events recorded since ``since`` for these customers, as book events."""
    rows = session.scalars(select(Event).where(Event.at >= since).order_by(Event.at))
    events = []
    for row in rows:
        if row.customer_id not in customers:
            continue
        at = row.at if row.at.tzinfo else row.at.replace(tzinfo=UTC)
        day = (at - since).days
        events.append(
            BookEvent(
                customer=row.customer_id,
                day=max(day, 0),
                at=at.time().replace(microsecond=0),
                name=row.name,
                properties=dict(row.properties or {}),
            )
        )
    return events


def summarize(result: BookResult, plan: CompiledPlan) -> BacktestSide:
    """One run, for ``plan``'s playbook."""
    runs = [r for r in result.enrollments if r.playbook == plan.playbook]
    actions = [a for a in result.actions if a.playbook == plan.playbook]
    customers = max(result.summary.customers, 1)
    emails = sum(len(a.to) for a in actions if a.kind == "email")
    tasks = sum(1 for a in actions if a.kind == "task")
    goals = [r for r in runs if r.outcome == EnrollmentStatus.GOAL_REACHED.value]
    days = [(r.ended_at - r.started_at).total_seconds() / 86_400 for r in goals if r.ended_at]
    stopped: Counter[str] = Counter()
    for run in runs:
        if run.outcome:
            stopped[run.outcome] += 1
        else:
            stopped[f"running: {run.waiting or '?'}"] += 1
    return BacktestSide(
        version=plan.short_version,
        customers=result.summary.customers,
        enrollments=len(runs),
        emails_per_customer=round(emails / customers, 2),
        tasks_per_customer=round(tasks / customers, 2),
        goal_rate=round(len(goals) / len(runs), 3) if runs else 0.0,
        median_days_to_goal=round(median(days), 1) if days else None,
        stopped=dict(sorted(stopped.items())),
    )


async def backtest(
    project: Project,
    plans: list[CompiledPlan],
    session: Session,
    *,
    since_days: int = 90,
    now: datetime | None = None,
) -> Backtest:
    """Replay the store's customers and recent events through each of ``plans``."""
    now = now or datetime.now(UTC)
    start = (now - timedelta(days=since_days)).replace(hour=0, minute=0, second=0, microsecond=0)
    book: Book | None = book_from_store(session)
    if book is not None:
        source = "store"
        events = recorded_events(session, start, {c.id for c in book.customers})
    else:
        folder = project.root / EXAMPLE_BOOK
        source = str(folder)
        book = load_book(folder / "customers.yaml")
        path = folder / "events.yaml"
        events = [e for e in load_events(path) if e.day <= since_days] if path.is_file() else []
    sides = []
    for plan in plans:
        variant = replace(project, plans={**project.plans, plan.playbook: plan})
        result = await simulate_book(variant, book, events, days=since_days, start=start)
        sides.append(summarize(result, plan))
    return Backtest(
        playbook=plans[0].playbook,
        source=source,
        start=start,
        days=since_days,
        events=len(events),
        sides=sides,
    )
