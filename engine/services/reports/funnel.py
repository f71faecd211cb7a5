"""The funnel: per playbook and version, how enrollments moved through the steps.

For each step: how many runs reached it (entered it at least once), got past it (went on to
another step or an end) and, of those that did not, where they left: ``exit`` (the exit
condition), ``goal`` (the goal was reached), ``completed`` (an end step), ``stopped``
(cancelled, failed or terminated), ``waiting`` (running, at the step for less than
`STUCK_AFTER`) or ``stuck`` (running, at the step for longer). ``entered`` counts every
run started in the range, including runs that have not reported a step yet.

Steps entered come from `step_visits`. A run's visits are found by its workflow ID and its
start and end times, so the query needs nothing of the enrollments table but the columns
every version of it has.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

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


@dataclass
class _Run:
    workflow_id: str
    customer_id: str
    status: str
    started_at: datetime
    ended_at: datetime | None
    # (entered_at, visit row id, step): the id orders visits entered at the same instant.
    visits: list[tuple[datetime, int, str]] = field(default_factory=list)


def _step_order(session: Session, playbook: str, version: str) -> list[str]:
    """The version's steps in plan order (its stored plan), for the funnel's rows."""
    row = session.get(PlaybookVersion, (playbook, version))
    if row is None:
        return []
    return [str(step["id"]) for step in row.plan.get("steps", []) if "id" in step]


def _where_left(run: _Run, now: datetime) -> str:
    if run.status == EnrollmentStatus.RUNNING:
        last = run.visits[-1][0] if run.visits else run.started_at
        return "stuck" if now - last > STUCK_AFTER else "waiting"
    return ENDED_AS.get(run.status, "stopped")


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="funnel", title="Funnel", filters=filters)
    start, end = day_bounds(filters)
    query = select(
        Enrollment.workflow_id,
        Enrollment.playbook_id,
        Enrollment.version,
        Enrollment.customer_id,
        Enrollment.status,
        Enrollment.started_at,
        Enrollment.ended_at,
    )
    if filters.segment:
        query = query.join(Customer, Customer.id == Enrollment.customer_id).where(
            Customer.segment == filters.segment
        )
    if filters.playbook:
        query = query.where(Enrollment.playbook_id == filters.playbook)
    if filters.version:
        query = query.where(Enrollment.version.startswith(filters.version, autoescape=True))
    if start:
        query = query.where(Enrollment.started_at >= start)
    if end:
        query = query.where(Enrollment.started_at < end)

    groups: dict[tuple[str, str], list[_Run]] = defaultdict(list)
    by_workflow: dict[str, list[_Run]] = defaultdict(list)
    for wf, playbook, version, customer, status, started, ended in session.execute(query):
        run = _Run(wf, customer, status, started, ended)
        groups[(playbook, version)].append(run)
        by_workflow[wf].append(run)
    for runs in by_workflow.values():
        runs.sort(key=lambda r: r.started_at)

    if groups:
        visits = select(
            StepVisit.workflow_id, StepVisit.id, StepVisit.step_id, StepVisit.entered_at
        ).where(
            StepVisit.playbook_id.in_({p for p, _ in groups}),
            StepVisit.version.in_({v for _, v in groups}),
        )
        if start:
            visits = visits.where(StepVisit.entered_at >= start)
        for wf, visit_id, step, at in session.execute(visits):
            found = by_workflow.get(wf)
            if not found:
                continue
            # The run of this workflow ID that had started by then (IDs are reused).
            i = bisect.bisect_right([r.started_at for r in found], at) - 1
            ended = found[i].ended_at if i >= 0 else None
            if i >= 0 and (ended is None or at <= ended):
                found[i].visits.append((at, visit_id, step))

    for (playbook, version), runs in sorted(groups.items()):
        report.tables.append(_table(session, report, playbook, version, runs, now))
    if not groups:
        report.notes.append("No enrollments match these filters.")
    return report


def _table(
    session: Session, report: Report, playbook: str, version: str, runs: list[_Run], now: datetime
) -> Table:
    """One playbook version's funnel: counts are runs, links list their customers."""
    reached: dict[str, list[_Run]] = defaultdict(list)
    left: dict[tuple[str, str], list[_Run]] = defaultdict(list)
    for run in runs:
        run.visits.sort()
        for step in dict.fromkeys(step for _, _, step in run.visits):
            reached[step].append(run)
        if run.visits:
            left[(run.visits[-1][2], _where_left(run, now))].append(run)
    steps = _step_order(session, playbook, version)
    steps += sorted(s for s in reached if s not in steps)
    prefix = f"funnel|{playbook}|{version}"
    entered = report.runs(f"{prefix}||entered", runs)
    table = Table(
        key=f"{playbook}@{version[:12]}",
        title=f"{playbook} · version {version[:12]} · {entered.value} entered",
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
        entered=entered,
    )
    for step in steps:
        here = {k: left.get((step, k), []) for k in LEFT}
        stayed = {id(run) for group in here.values() for run in group}
        past = [run for run in reached[step] if id(run) not in stayed]
        row: dict[str, Cell] = {"step": Cell(value=step)}
        row["reached"] = report.runs(f"{prefix}|{step}|reached", reached[step])
        row["past"] = report.runs(f"{prefix}|{step}|past", past)
        row["past_rate"] = Cell(value=rate(len(past), len(reached[step])))
        for k in LEFT:
            row[k] = report.runs(f"{prefix}|{step}|{k}", here[k])
        table.rows.append(row)
    return table
