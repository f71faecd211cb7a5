"""A book simulation's result as terminal tables or JSON (``playbook simulate --book``)."""

from __future__ import annotations

import json
from collections import Counter

from rich.console import Console
from rich.table import Table

from engine.simulation.book import BookResult


def to_json(result: BookResult) -> str:
    """Everything: actions, enrollments, summary and warnings."""
    return json.dumps(result.model_dump(mode="json"), indent=2, ensure_ascii=False)


def summary_lines(result: BookResult) -> list[str]:
    """The summary as plain text lines (what the README quotes)."""
    s = result.summary
    lines = [
        f"{s.customers} customers, {result.days} days from {result.start:%Y-%m-%d}: "
        f"{s.enrollments} enrollments, {s.emails} emails, {s.tasks} tasks "
        f"({result.seconds:.0f} s)",
        f"contacts over the caps: {result.contacts_over_caps}",
        "enrollments by outcome:",
    ]
    for playbook, outcomes in s.outcomes.items():
        counts = ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items(), key=lambda i: -i[1]))
        lines.append(f"  {playbook}: {counts}")
    lines.append("emails per playbook:")
    for playbook, n in s.emails_per_playbook.items():
        lines.append(f"  {playbook}: {n}")
    if s.emails_per_day:
        busiest = max(s.emails_per_day.items(), key=lambda i: i[1])
        per_month: Counter[str] = Counter()
        for day, n in s.emails_per_day.items():
            per_month[f"{day:%Y-%m}"] += n
        lines.append(
            f"emails per day: {len(s.emails_per_day)} days with email, busiest "
            f"{busiest[0]:%Y-%m-%d} ({busiest[1]}); per month: "
            + ", ".join(f"{m} {n}" for m, n in sorted(per_month.items()))
        )
    lines.append("tasks per CSM per week (total, weeks with tasks, busiest week):")
    for csm, weeks in s.tasks_per_csm_week.items():
        week, most = max(weeks.items(), key=lambda i: i[1])
        lines.append(f"  {csm}: {sum(weeks.values())}, {len(weeks)}, {week} ({most})")
    return lines


def print_book(result: BookResult, console: Console) -> None:
    """Every action, every enrollment, the warnings and the summary."""
    actions = Table(title=f"{len(result.actions)} action(s)", title_justify="left")
    for header in (
        "when (customer's time)",
        "customer",
        "playbook",
        "version",
        "step",
        "kind",
        "detail",
    ):
        actions.add_column(header, overflow="fold")
    for a in result.actions:
        detail = a.detail
        if a.kind == "email":
            detail = ", ".join(a.to) or "-"
            if a.suppressed:
                detail += f" (not sent: {', '.join(a.suppressed)})"
        elif a.kind == "task":
            detail = f"{a.detail} -> {a.assignee or 'unassigned'}"
        actions.add_row(
            f"{a.at:%Y-%m-%d %H:%M %Z}", a.customer, a.playbook, a.version, a.step, a.kind, detail
        )
    console.print(actions)
    runs = Table(title=f"{len(result.enrollments)} enrollment(s)", title_justify="left")
    for header in ("customer", "playbook", "version", "cycle", "started", "ended", "outcome"):
        runs.add_column(header, overflow="fold")
    for e in result.enrollments:
        runs.add_row(
            e.customer,
            e.playbook,
            e.version,
            e.cycle or "-",
            f"{e.started_at:%Y-%m-%d}",
            f"{e.ended_at:%Y-%m-%d}" if e.ended_at else "-",
            e.outcome or f"running: {e.waiting}",
        )
    console.print(runs)
    if result.health:
        moves = Table(title=f"{len(result.health)} health change(s)", title_justify="left")
        for header in ("when (customer's time)", "day", "customer", "what"):
            moves.add_column(header, overflow="fold")
        for h in result.health:
            moves.add_row(f"{h.at:%Y-%m-%d %H:%M %Z}", str(h.day), h.customer, h.describe())
        console.print(moves)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    for line in result.over_caps:
        console.print(f"[red]over the caps:[/] {line}", markup=True)
    console.print("\n".join(summary_lines(result)), markup=False)
