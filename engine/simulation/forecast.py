"""The forecast of a playbook change: the book simulated with the old version, then the new.

`forecast_change` runs `simulate_book` twice (a time-skipping server each), over the same
customers, team and events, once with the project's playbook set to the old plan and once
to the new one, and sums each run up as a `ForecastSide` (emails per week, tasks per CSM per
week, enrollments of the playbook reaching its goal). The book is the store's customers
and team (`book_from_store`) or, when the store has none, the example book
(``playbooks/examples/book``).

Who enters the playbook: the real triggers over the book (sweeps of date and schedule
playbooks; the example book's events), and, for an event-triggered playbook, its trigger
event on day 0 for each customer running it now (store) or for every customer (example
book), so that the change is measured on the customers it would serve. A customer already
mid-way is simulated from the first step: a forecast, not a replay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from engine.language.plan import CompiledPlan
from engine.project import Project
from engine.services.change import Forecast, ForecastSide
from engine.simulation.book import BookResult, simulate_book
from engine.simulation.book_inputs import Book, BookCustomer, BookEvent, load_book, load_events
from engine.simulation.inputs import SimContact, SimTeamMember
from engine.statuses import EnrollmentStatus
from engine.store.models import Customer, Enrollment, TeamMember

EXAMPLE_BOOK = Path("examples") / "book"


def book_from_store(session: Session) -> Book | None:
    """The store's customers (with contacts) and team as a book; None when it has none."""
    customers = session.scalars(
        select(Customer).options(selectinload(Customer.contacts)).order_by(Customer.id)
    ).all()
    if not customers:
        return None
    team = [
        SimTeamMember(
            email=m.email, name=m.name, manager=m.manager_email, roles=list(m.roles or [])
        )
        for m in session.scalars(select(TeamMember).order_by(TeamMember.email))
    ]
    return Book(
        customers=[
            BookCustomer(
                id=c.id,
                name=c.name,
                segment=c.segment,
                timezone=c.timezone or "UTC",
                country=c.country,
                locale=c.locale,
                owner=c.owner_email,
                renewal_date=c.renewal_date,
                health_score=c.health_score,
                attributes=dict(c.attributes or {}),
                tags=list(c.tags or []),
                contacts=[
                    SimContact(
                        email=k.email,
                        first_name=k.first_name,
                        last_name=k.last_name,
                        role=k.role,
                        unsubscribed=bool(k.unsubscribed),
                        timezone=k.timezone,
                        locale=k.locale,
                        country=k.country,
                    )
                    for k in c.contacts
                ],
            )
            for c in customers
        ],
        team=team,
    )


def running_customers(session: Session, playbook: str) -> list[str]:
    """The customers with a running enrollment of ``playbook``."""
    return sorted(
        set(
            session.scalars(
                select(Enrollment.customer_id).where(
                    Enrollment.playbook_id == playbook,
                    Enrollment.status == EnrollmentStatus.RUNNING.value,
                )
            )
        )
    )


def entries(plan: CompiledPlan, customers: Sequence[str]) -> list[BookEvent]:
    """The playbook's trigger event on day 0 for ``customers`` (event triggers only)."""
    if plan.trigger is None or plan.trigger.kind != "event" or not plan.trigger.event:
        return []
    return [BookEvent(customer=c, day=0, name=plan.trigger.event) for c in customers]


def side(result: BookResult, plan: CompiledPlan) -> ForecastSide:
    """One run summed up for ``plan``'s playbook and the whole book's workload."""
    weeks = max(result.days / 7, 1.0)
    csms = max(len(result.summary.tasks_per_csm_week), 1)
    outcomes = result.summary.outcomes.get(plan.playbook, {})
    return ForecastSide(
        version=plan.short_version,
        days=result.days,
        customers=result.summary.customers,
        emails=result.summary.emails,
        emails_per_week=round(result.summary.emails / weeks, 1),
        tasks=result.summary.tasks,
        tasks_per_csm_week=round(result.summary.tasks / weeks / csms, 2),
        enrollments=sum(outcomes.values()),
        goal_reached=outcomes.get(EnrollmentStatus.GOAL_REACHED.value, 0),
        outcomes=dict(outcomes),
    )


async def forecast_change(
    project: Project,
    old: CompiledPlan,
    new: CompiledPlan,
    *,
    book: Book | None,
    running: Sequence[str] = (),
    days: int = 30,
    start: date | None = None,
) -> Forecast:
    """Old against new over ``days`` from ``start`` (default today); see the module doc.

    ``book``: the store's (`book_from_store`) or None for the example book of ``project``;
    ``running``: the customers running the playbook now (store book).
    """
    source = "store"
    events: list[BookEvent] = []
    if book is None:
        folder = project.root / EXAMPLE_BOOK
        source = str(folder)
        book = load_book(folder / "customers.yaml")
        if (folder / "events.yaml").is_file():
            events = [e for e in load_events(folder / "events.yaml") if e.day <= days]
        running = [c.id for c in book.customers]
    events = [*events, *entries(new, running)]
    day0 = start or datetime.now(UTC).date()
    sides: list[ForecastSide] = []
    for plan in (old, new):
        # One server per run: both runs start the same workflow ids.
        variant = replace(project, plans={**project.plans, plan.playbook: plan})
        result = await simulate_book(variant, book, events, days=days, start=day0)
        sides.append(side(result, plan))
    return Forecast(
        source=source,
        start=datetime(day0.year, day0.month, day0.day, tzinfo=UTC),
        days=days,
        old=sides[0],
        new=sides[1],
    )
