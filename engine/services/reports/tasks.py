"""Task performance, per CSM and per playbook: created, completed (on time), escalated,
still open, the outcomes chosen and the median time to complete in hours.

"On time" is completed by the due date (or with no due date). "Escalated" counts tasks that
were escalated (`escalated_at`), not the escalation tasks themselves, which count as tasks
of whoever received them. A task's playbook version is that of the enrollment run that
created it (the task row's `run_key`, that run's `enrollment_key`; an escalation task's is
the escalated task's).

The counts and outcomes are aggregated in the database in one pass; only the completed
tasks' hours (worked out in the database) are read, for the medians. The customers behind
a figure are queried when asked for (`customers`).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Select, and_, case, func, or_, select
from sqlalchemy.orm import Session

from engine.services.reports.model import (
    Cell,
    Chart,
    Column,
    Report,
    ReportFilters,
    Table,
    day_bounds,
    days_between,
    rate,
)
from engine.statuses import TaskStatus
from engine.store.models import Customer, Enrollment, Task

RUN = Enrollment
DONE = Task.status == TaskStatus.COMPLETED
ON_TIME = and_(DONE, or_(Task.due_at.is_(None), Task.completed_at <= Task.due_at))
# What each linked measure counts, as SQL over a task row.
CONDITIONS: dict[str, ColumnElement[bool] | None] = {
    "created": None,
    "completed": DONE,
    "on_time": ON_TIME,
    "escalated": Task.escalated_at.is_not(None),
    "open": Task.status == TaskStatus.OPEN,
}
# The groupings: table key, title, column label, the grouped column and its missing value.
GROUPINGS: list[tuple[str, str, str, Any, str]] = [
    ("csm", "Per CSM", "CSM", Task.assignee_email, "(unassigned)"),
    ("playbook", "Per playbook", "Playbook", Task.playbook_id, "(none)"),
]


def _tasks(columns: Sequence[Any], filters: ReportFilters) -> Select[Any]:
    """``columns`` over the tasks within ``filters``."""
    start, end = day_bounds(filters)
    query = select(*columns).select_from(Task)
    if filters.playbook:
        query = query.where(Task.playbook_id == filters.playbook)
    if filters.version:
        # The run that created it, by its key (workflow IDs are reused across runs).
        query = query.join(RUN, RUN.enrollment_key == Task.run_key).where(
            RUN.version.startswith(filters.version, autoescape=True)
        )
    if start:
        query = query.where(Task.created_at >= start)
    if end:
        query = query.where(Task.created_at < end)
    if filters.segment:
        query = query.join(Customer, Customer.id == Task.customer_id).where(
            Customer.segment == filters.segment
        )
    return query


def _count(condition: ColumnElement[bool] | None) -> ColumnElement[int]:
    if condition is None:
        return func.count()
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="tasks", title="Task performance", filters=filters)
    columns = [g[3] for g in GROUPINGS]
    # One pass over the tasks, grouped by CSM, playbook and outcome (a few hundred groups),
    # rolled up here into both tables: each table's counts and outcomes.
    counted = [_count(c) for c in CONDITIONS.values()]
    grouped = (*columns, Task.outcome)
    counts: dict[str, dict[str, dict[str, int]]] = {key: {} for key, *_ in GROUPINGS}
    outcomes: dict[str, dict[str, Counter[str]]] = {
        key: defaultdict(Counter) for key, *_ in GROUPINGS
    }
    width = len(columns)
    for line in session.execute(_tasks([*grouped, *counted], filters).group_by(*grouped)):
        groups, outcome = line[:width], line[width]
        tally = dict(zip(CONDITIONS, (int(n) for n in line[width + 1 :]), strict=True))
        for (key, *_, missing), group in zip(GROUPINGS, groups, strict=True):
            mine = counts[key].setdefault(group or missing, dict.fromkeys(CONDITIONS, 0))
            for measure, n in tally.items():
                mine[measure] += n
            if tally["completed"]:
                outcomes[key][group or missing][outcome or "-"] += tally["completed"]
    # The completed tasks' hours, worked out in the database, read once for both groupings
    # (the medians need them all).
    durations: dict[str, dict[str, list[float]]] = {key: defaultdict(list) for key, *_ in GROUPINGS}
    took = days_between(session, Task.completed_at, Task.created_at) * 24
    for *names, hours in session.execute(
        _tasks([*columns, took], filters).where(DONE, Task.completed_at.is_not(None))
    ):
        for (key, *_, missing), group in zip(GROUPINGS, names, strict=True):
            durations[key][group or missing].append(hours)
    for key, title, label, _column, _missing in GROUPINGS:
        table = Table(
            key=key,
            title=title,
            columns=[
                Column(key="group", label=label, kind="text"),
                Column(key="created", label="Created"),
                Column(key="completed", label="Completed"),
                Column(key="on_time", label="On time"),
                Column(key="on_time_rate", label="On time %", kind="rate"),
                Column(key="escalated", label="Escalated"),
                Column(key="open", label="Open"),
                Column(key="median_hours", label="Median hours to complete", kind="number"),
                Column(key="outcomes", label="Outcomes", kind="text"),
            ],
            chart=Chart(
                type="stacked",
                label="group",
                series=["on_time", "late", "open"],
                title=f"Tasks {title.lower()}",
            ),
        )
        hours = durations[key]
        for group, c in sorted(counts[key].items()):
            cell = f"tasks|{key}|{group}"
            spent = hours.get(group)
            row = {m: Cell(value=c[m], cell=f"{cell}|{m}") for m in CONDITIONS}
            table.rows.append(
                {
                    "group": Cell(value=group),
                    **row,
                    "late": Cell(value=c["completed"] - c["on_time"]),
                    "on_time_rate": Cell(value=rate(c["on_time"], c["completed"])),
                    "median_hours": Cell(
                        value=round(float(np.median(spent)), 1) if spent else None
                    ),
                    "outcomes": Cell(
                        value=", ".join(
                            f"{k}: {n}" for k, n in sorted(outcomes[key][group].items())
                        )
                    ),
                }
            )
        report.tables.append(table)
    if not any(counts.values()):
        report.notes.append("No tasks match these filters.")
    return report


def customers(session: Session, filters: ReportFilters, cell: str) -> list[str] | None:
    """The customers behind one figure (``tasks|csm|<email>|<measure>`` or
    ``tasks|playbook|<id>|<measure>``), or None if the report has no such figure."""
    parts = cell.split("|")
    groupings = {key: (column, missing) for key, _, _, column, missing in GROUPINGS}
    if len(parts) != 4 or parts[0] != "tasks" or parts[1] not in groupings:
        return None
    _, grouping, group, measure = parts
    if measure not in CONDITIONS:
        return None
    column, missing = groupings[grouping]
    query = _tasks([Task.customer_id], filters).where(
        Task.customer_id.is_not(None),
        column.is_(None) if group == missing else column == group,
    )
    condition = CONDITIONS[measure]
    if condition is not None:
        query = query.where(condition)
    return sorted(set(session.scalars(query.distinct())))
