"""Task performance, per CSM and per playbook: created, completed (on time), escalated,
still open, the outcomes chosen and the median time to complete in hours.

"On time" is completed by the due date (or with no due date). "Escalated" counts tasks that
were escalated (`escalated_at`), not the escalation tasks themselves, which count as tasks
of whoever received them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
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
from engine.statuses import TaskStatus
from engine.store.models import Customer, Task


def build(session: Session, filters: ReportFilters, now: datetime) -> Report:
    report = Report(kind="tasks", title="Task performance", filters=filters)
    start, end = day_bounds(filters)
    # Plain rows of the columns used, not ORM objects: thousands of tasks a year.
    query = select(
        Task.customer_id,
        Task.assignee_email,
        Task.playbook_id,
        Task.status,
        Task.outcome,
        Task.due_at,
        Task.created_at,
        Task.completed_at,
        Task.escalated_at,
    )
    if filters.playbook:
        query = query.where(Task.playbook_id == filters.playbook)
    if start:
        query = query.where(Task.created_at >= start)
    if end:
        query = query.where(Task.created_at < end)
    if filters.segment:
        query = query.join(Customer, Customer.id == Task.customer_id).where(
            Customer.segment == filters.segment
        )
    tasks: list[Any] = list(session.execute(query))
    groupings: list[tuple[str, str, str, Callable[[Any], str]]] = [
        ("csm", "Per CSM", "CSM", lambda t: t.assignee_email or "(unassigned)"),
        ("playbook", "Per playbook", "Playbook", lambda t: t.playbook_id or "(none)"),
    ]
    for key, title, label, group_of in groupings:
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
        groups: dict[str, list[Any]] = defaultdict(list)
        for task in tasks:
            groups[group_of(task)].append(task)
        for group, members in sorted(groups.items()):
            done = [t for t in members if t.status == TaskStatus.COMPLETED]
            on_time = [
                t
                for t in done
                if t.due_at is None or (t.completed_at is not None and t.completed_at <= t.due_at)
            ]
            hours = [
                (t.completed_at - t.created_at).total_seconds() / 3600
                for t in done
                if t.completed_at is not None
            ]
            outcomes = Counter(t.outcome or "-" for t in done)
            cell = f"tasks|{key}|{group}"
            table.rows.append(
                {
                    "group": Cell(value=group),
                    "created": report.runs(f"{cell}|created", members),
                    "completed": report.runs(f"{cell}|completed", done),
                    "on_time": report.runs(f"{cell}|on_time", on_time),
                    "late": Cell(value=len(done) - len(on_time)),
                    "on_time_rate": Cell(value=rate(len(on_time), len(done))),
                    "escalated": report.runs(
                        f"{cell}|escalated", [t for t in members if t.escalated_at is not None]
                    ),
                    "open": report.runs(
                        f"{cell}|open", [t for t in members if t.status == TaskStatus.OPEN]
                    ),
                    "median_hours": Cell(
                        value=round(float(np.median(hours)), 1) if hours else None
                    ),
                    "outcomes": Cell(
                        value=", ".join(f"{k}: {n}" for k, n in sorted(outcomes.items()))
                    ),
                }
            )
        report.tables.append(table)
    if not tasks:
        report.notes.append("No tasks match these filters.")
    return report
