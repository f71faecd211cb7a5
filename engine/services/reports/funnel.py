"""The funnel: per playbook and version, how enrollments moved through the steps.

For each step: how many runs reached it (entered it at least once), got past it (went on to
another step or an end) and, of those that did not, where they left: ``exit`` (the exit
condition), ``goal`` (the goal was reached), ``completed`` (an end step), ``stopped``
(cancelled, failed or terminated), ``waiting`` (running, at the step for less than
`STUCK_AFTER`) or ``stuck`` (running, at the step for longer). ``entered`` counts every
run started in the range, including runs that have not reported a step yet.

Steps entered come from `step_visits`, joined to their enrollment row on the run key
(`step_visits.run_key` is the run's `enrollment_key`). A step's runs are counted from
their first visits there (``visit = 1``), where a run left from its `latest` visit. The
counts are aggregated in the database (the page must stay fast with a year of 10,000
customers); the customers behind one figure are queried when asked for (`customers`).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.orm import Session, aliased

from engine.services.reports.model import (
    Cell,
    Chart,
    Column,
    Report,
    ReportFilters,
    Table,
    day_bounds,
    rate,
)
from engine.statuses import EnrollmentStatus
from engine.store.models import Customer, Enrollment, PlaybookVersion, StepVisit

E, V = Enrollment, StepVisit
Latest = aliased(StepVisit)  # a run's latest visit, beside the one being counted
Q = TypeVar("Q", bound=Select)
# A run's visits carry its enrollment key (workflow IDs are reused across runs).
OF_RUN = V.run_key == E.enrollment_key

STUCK_AFTER = timedelta(days=30)
LEFT = ("exit", "goal", "completed", "stopped", "waiting", "stuck")
ENDED_AS: dict[str, str] = {
    EnrollmentStatus.EXITED: "exit",
    EnrollmentStatus.GOAL_REACHED: "goal",
    EnrollmentStatus.COMPLETED: "completed",
}
LABELS = {
    "step": "Step",
    "reached": "Reached",
    "past": "Got past",
    "past_rate": "Got past %",
    "exit": "Left: exit",
    "goal": "Left: goal",
    "completed": "Ended here",
    "stopped": "Stopped",
    "waiting": "Still waiting",
    "stuck": "Stuck",
}


def _step_order(session: Session, playbook: str, version: str) -> list[str]:
    """The version's steps in plan order (its stored plan), for the funnel's rows."""
    row = session.get(PlaybookVersion, (playbook, version))
    if row is None:
        return []
    return [str(step["id"]) for step in row.plan.get("steps", []) if "id" in step]


def _filtered(query: Q, filters: ReportFilters, by: type[Enrollment] | type[StepVisit] = E) -> Q:
    """``query`` narrowed to ``filters``: the run's start from the enrollment row, playbook,
    version and customer from ``by`` (a run's visits carry its own, so a query over visits
    can use their indexes)."""
    start, end = day_bounds(filters)
    if filters.segment:
        query = query.join(Customer, Customer.id == by.customer_id).where(
            Customer.segment == filters.segment
        )
    if filters.playbook:
        query = query.where(by.playbook_id == filters.playbook)
    if filters.version:
        query = query.where(by.version.startswith(filters.version, autoescape=True))
    if start:
        query = query.where(E.started_at >= start)
    if end:
        query = query.where(E.started_at < end)
    return query


def _left(status: str, stuck: bool) -> str:
    if status == EnrollmentStatus.RUNNING:
        return "stuck" if stuck else "waiting"
    return ENDED_AS.get(status, "stopped")


def _left_condition(measure: str, cutoff: datetime) -> ColumnElement[bool]:
    """SQL for runs whose latest visit (joined as V) left them in ``measure``."""
    running = E.status == EnrollmentStatus.RUNNING
    if measure == "stuck":
        return and_(running, V.entered_at < cutoff)
    if measure == "waiting":
        return and_(running, V.entered_at >= cutoff)
    if measure == "stopped":
        return E.status.not_in([EnrollmentStatus.RUNNING, *ENDED_AS])
    status = next(k for k, v in ENDED_AS.items() if v == measure)
    return E.status == status


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="funnel", title="Funnel", filters=filters)
    cutoff = now - STUCK_AFTER
    group = (E.playbook_id, E.version)
    entered = dict(
        ((p, v), n)
        for p, v, n in session.execute(
            _filtered(select(*group, func.count()), filters).group_by(*group)
        )
    )
    # Over the visits, grouped by their own playbook, version and step (the order of the
    # indexes of migration 0011), each joined to its run's enrollment row.
    steps = (V.playbook_id, V.version, V.step_id)
    reached: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    # One first visit per run and step: counting them counts the runs that reached it.
    query = select(*steps, func.count()).select_from(V).join(E, OF_RUN).where(V.visit == 1)
    for p, v, step, n in session.execute(_filtered(query, filters, V).group_by(*steps)):
        reached[(p, v)][step] = n
    stuck = case((V.entered_at < cutoff, 1), else_=0)
    latest = (
        select(*steps, E.status, stuck, func.count())
        .select_from(V)
        .join(E, OF_RUN)
        .where(V.latest.is_(True))
    )
    left: dict[tuple[str, str], dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for p, v, step, status, is_stuck, n in session.execute(
        _filtered(latest, filters, V).group_by(*steps, E.status, stuck)
    ):
        left[(p, v)][(step, _left(status, bool(is_stuck)))] += n
    for playbook, version in sorted(entered):
        key = (playbook, version)
        report.tables.append(
            _table(session, playbook, version, entered[key], reached[key], left[key])
        )
    if not entered:
        report.notes.append("No enrollments match these filters.")
    return report


def _table(
    session: Session,
    playbook: str,
    version: str,
    entered: int,
    reached: dict[str, int],
    left: dict[tuple[str, str], int],
) -> Table:
    """One playbook version's funnel: counts are runs, links list their customers."""
    steps = _step_order(session, playbook, version)
    steps += sorted(s for s in reached if s not in steps)
    prefix = f"funnel|{playbook}|{version}"
    table = Table(
        key=f"{playbook}@{version[:12]}",
        title=f"{playbook} · version {version[:12]} · {entered} entered",
        columns=[Column(key="step", label="Step", kind="text")]
        + [
            Column(key=k, label=LABELS[k], kind="rate" if k == "past_rate" else "count")
            for k in ("reached", "past", "past_rate", *LEFT)
        ],
        chart=Chart(
            type="hbar",
            label="step",
            series=["reached", "past"],
            title=f"{playbook} (version {version[:12]})",
        ),
        entered=Cell(value=entered, cell=f"{prefix}||entered"),
    )
    for step in steps:
        here = {k: left.get((step, k), 0) for k in LEFT}
        total = reached.get(step, 0)
        past = total - sum(here.values())
        row: dict[str, Cell] = {"step": Cell(value=step)}
        row["reached"] = Cell(value=total, cell=f"{prefix}|{step}|reached")
        row["past"] = Cell(value=past, cell=f"{prefix}|{step}|past")
        row["past_rate"] = Cell(value=rate(past, total))
        for k in LEFT:
            row[k] = Cell(value=here[k], cell=f"{prefix}|{step}|{k}")
        table.rows.append(row)
    return table


def customers(
    session: Session, filters: ReportFilters, cell: str, now: datetime
) -> list[str] | None:
    """The customers behind one figure (``funnel|playbook|version|step|measure``), or None
    if the report has no such figure."""
    parts = cell.split("|")
    if (
        len(parts) != 5
        or parts[0] != "funnel"
        or parts[4] not in ("entered", "reached", "past", *LEFT)
    ):
        return None
    _, playbook, version, step, measure = parts
    mine = and_(E.playbook_id == playbook, E.version == version)
    if measure == "entered":
        everyone = select(E.customer_id).where(mine)
        return sorted(set(session.scalars(_filtered(everyone, filters))))
    at_step = select(E.customer_id).join(V, OF_RUN).where(mine, V.step_id == step)
    if measure == "reached":
        query = at_step.where(V.visit == 1)
    elif measure == "past":
        # Reached the step, and the run's latest visit is elsewhere (or a later visit).
        query = at_step.where(V.visit == 1, V.latest.is_(False)).where(
            ~select(Latest.id)
            .where(
                Latest.run_key == V.run_key,
                Latest.step_id == step,
                Latest.latest.is_(True),
            )
            .exists()
        )
    else:
        query = at_step.where(V.latest.is_(True), _left_condition(measure, now - STUCK_AFTER))
    return sorted(set(session.scalars(_filtered(query.distinct(), filters))))
