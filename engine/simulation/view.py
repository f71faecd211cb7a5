"""Show a simulation `Timeline`: a terminal table, JSON, or an HTML page for review."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from rich.console import Console
from rich.table import Table

from engine.simulation.timeline import Timeline, TimelineEntry
from engine.statuses import OutboxStatus

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
KIND_STYLE = {
    "email": "cyan",
    "task": "magenta",
    "task_completed": "green",
    "task_escalated": "red",
    "task_timed_out": "yellow",
    "event": "yellow",
    "milestone": "green",
    "branch": "blue",
    "wait": "dim",
    "timeout": "yellow",
    "skipped": "dim",
    "exit": "red",
    "goal": "bold green",
    "end": "bold",
    "health": "bold yellow",
}


def describe(entry: TimelineEntry) -> str:
    """One line saying what happened, for the table and the page."""
    if entry.kind == "email":
        if entry.subjects and len(set(entry.subjects.values())) > 1:
            text = "; ".join(f'{to}: "{subject}"' for to, subject in entry.subjects.items())
        elif entry.to:
            text = f'{", ".join(entry.to)}: "{entry.subject}"'
        else:
            text = entry.detail or "no recipients"
        if entry.suppressed:
            text += f" (suppressed: {', '.join(entry.suppressed)})"
        return text
    if entry.kind == "task":
        due = f", due {entry.due:%a %d %b %H:%M}" if entry.due else ""
        return f"{entry.title} -> {entry.assignee or 'unassigned'} ({entry.priority}{due})"
    if entry.kind == "wait":
        if entry.until is None:
            return entry.detail
        until = f"until {entry.until:%a %Y-%m-%d %H:%M}"
        return until if entry.detail.startswith("until ") else f"{entry.detail} {until}"
    if entry.kind == "branch":
        return f"-> {entry.goto} (because {entry.because})"
    if entry.kind in ("task_completed", "exit", "goal", "end"):
        return (
            f"{entry.outcome}: {entry.detail}"
            if entry.detail != entry.outcome
            else str(entry.outcome)
        )
    return entry.detail


def print_table(timeline: Timeline, console: Console) -> None:
    table = Table(
        title=f"{timeline.playbook} for {timeline.customer} "
        f"({timeline.timezone}), version {timeline.version[:12]}",
        title_justify="left",
        expand=False,
    )
    table.add_column("when (customer time)", no_wrap=True)
    table.add_column("day", justify="right")
    table.add_column("step", no_wrap=True)
    table.add_column("what", no_wrap=True)
    table.add_column("details")
    for entry in timeline.timeline:
        style = KIND_STYLE.get(entry.kind, "")
        table.add_row(
            f"{entry.at:%a %Y-%m-%d %H:%M}",
            str(entry.day),
            entry.step,
            f"[{style}]{entry.kind}[/]" if style else entry.kind,
            describe(entry),
        )
    console.print(table)
    console.print(
        f"outcome: [bold]{timeline.outcome}[/] "
        f"(from {timeline.start:%Y-%m-%d %H:%M} to {timeline.end:%Y-%m-%d %H:%M} "
        f"{timeline.timezone})"
    )
    for warning in timeline.warnings:
        console.print(f"[yellow]warning:[/] {warning}")


def to_json(timeline: Timeline) -> str:
    return json.dumps(timeline.public_json(), indent=2, ensure_ascii=False)


def to_html(timeline: Timeline) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape())
    emails_by_step: dict[str, list] = {}
    for email in timeline.emails:
        emails_by_step.setdefault(email.step, []).append(email)
    return env.get_template("simulation.html").render(
        timeline=timeline,
        describe=describe,
        emails_by_step=emails_by_step,
        OutboxStatus=OutboxStatus,
    )
