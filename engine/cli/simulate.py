"""Trying a playbook before it ships: ``simulate``, on Temporal's time-skipping server."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.cli.context import err_console, format_option, out_console, plan_or_exit, root_option
from engine.statuses import OutboxStatus

if TYPE_CHECKING:
    from engine.language.plan import CompiledPlan
    from engine.simulation import SimTeamMember, Timeline

FILE = click.Path(dir_okay=False, path_type=Path)


@click.command()
@click.argument("playbook", required=False)
@click.option(
    "--customer",
    "customer_file",
    type=FILE,
    help="Customer file (YAML or JSON): id, name, segment, timezone, owner, ...",
)
@click.option(
    "--start",
    type=click.DateTime(
        ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%d %H:%M"]
    ),
    help="When the enrollment starts (ISO; no offset = customer time). "
    "Default: now, or the trigger date for on_date playbooks.",
)
@click.option(
    "--days",
    type=click.IntRange(1, 400),
    help="Stop after this many days (default: until the enrollment ends, max 400).",
)
@click.option(
    "--trigger",
    metavar="'NAME [k=v ...]'",
    help="The event that enrolls the customer in an on_event playbook, e.g. "
    "'health.changed score=30': the trigger's if is tried against it, and templates read "
    "it as event.properties.",
)
@click.option(
    "--event",
    "events",
    multiple=True,
    metavar="'DAY[@HH:MM] NAME [k=v ...]'",
    help="Deliver an event, e.g. '3@10:00 integration.connected source=crm'.",
)
@click.option(
    "--complete-task",
    "completions",
    multiple=True,
    metavar="'STEP@DAY[@HH:MM][:OUTCOME]'",
    help="Complete the open task of a step, e.g. 'kickoff@4:held'.",
)
@click.option(
    "--team",
    type=FILE,
    help="Team file (CSMs and managers). Default: <project>/examples/team.yaml.",
)
@format_option("json: the timeline, or with --all-fixtures the summary of every run.")
@click.option(
    "--html",
    "html_file",
    type=FILE,
    help="Also write the timeline as an HTML page with every email viewable.",
)
@click.option(
    "--book",
    "book_path",
    type=click.Path(exists=True, path_type=Path),
    help="Simulate the whole book: every playbook and its real triggers (sweeps, event "
    "routing) over every customer of this file or folder, for --days (default 365).",
)
@click.option(
    "--events",
    "events_file",
    type=FILE,
    help="With --book: the events file (YAML, JSON or CSV): product events, customer "
    "updates and unsubscribes, each for a customer on a day.",
)
@click.option(
    "--all-fixtures",
    is_flag=True,
    help="Simulate every playbook against every customer in <project>/examples/ "
    "and print a summary; exit 1 if any email fails to render.",
)
@root_option
def simulate(
    playbook: str | None,
    customer_file: Path | None,
    start: datetime | None,
    days: int | None,
    trigger: str | None,
    events: tuple[str, ...],
    completions: tuple[str, ...],
    team: Path | None,
    fmt: str,
    html_file: Path | None,
    book_path: Path | None,
    events_file: Path | None,
    all_fixtures: bool,
    root: Path,
) -> None:
    """Show what a customer would receive from a playbook, and when, day by day.

    Runs the real playbook interpreter on Temporal's time-skipping test server, with real
    template rendering and decisions, against a throwaway store: nothing is sent and
    nothing is written anywhere. Days count from the start; times are the customer's.

    \b
    Examples:
      playbook simulate onboarding --customer playbooks/examples/hoshino-logistics.yaml \\
          --start 2026-11-20T15:00:00+0000 --event '4@10:00 integration.connected' \\
          --complete-task kickoff@3:held
      playbook simulate adoption --customer playbooks/examples/kaffeehaus-digital.yaml \\
          --trigger 'customer.onboarded plan=pro'
      playbook simulate renewal --customer playbooks/examples/thornbury-capital.yaml --days 365
      playbook simulate --all-fixtures
      playbook simulate --book playbooks/examples/book/customers.yaml \\
          --events playbooks/examples/book/events.yaml --days 120 --start 2026-12-01
    """
    import asyncio

    from engine.errors import SimulationInputError
    from engine.simulation.view import print_table, to_html, to_json

    try:
        if book_path is not None:
            _simulate_book(root, book_path, events_file, days, start, fmt)
            return
        if events_file is not None:
            raise click.UsageError("--events goes with --book")
        if all_fixtures:
            failed = asyncio.run(_simulate_all(root, team, fmt))
            sys.exit(1 if failed else 0)
        if not playbook or not customer_file:
            raise click.UsageError("name a PLAYBOOK and --customer (or use --all-fixtures)")
        timeline = _simulate_one(
            plan_or_exit(playbook, root),
            root,
            customer_file,
            _team(root, team),
            start=start,
            days=days,
            trigger=trigger,
            events=events,
            completions=completions,
        )
    except SimulationInputError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)
    if fmt == "json":
        click.echo(to_json(timeline))
    else:
        print_table(timeline, out_console)
    if html_file:
        html_file.write_text(to_html(timeline), encoding="utf-8")
        err_console.print(f"wrote {html_file}")


def _simulate_book(
    root: Path,
    book_path: Path,
    events_file: Path | None,
    days: int | None,
    start: datetime | None,
    fmt: str,
) -> None:
    """The whole book over ``days``; a progress bar on a terminal; input errors raise
    `SimulationInputError`."""
    import asyncio

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from engine.project import load_project
    from engine.simulation.book import simulate_book
    from engine.simulation.book_inputs import load_book, load_events
    from engine.simulation.book_view import print_book, to_json

    project = load_project(root)
    if project.errors:
        for diag in project.errors:
            click.echo(str(diag), err=True)
        raise click.ClickException(f"{root}: the project has errors; fix them first")
    book = load_book(book_path)
    events = load_events(events_file) if events_file else []
    total = days or 365
    with Progress(
        "simulating the book",
        BarColumn(),
        MofNCompleteColumn(),
        "days",
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    ) as bar:
        task = bar.add_task("book", total=total)

        def advance(day: int, _: int) -> None:
            bar.update(task, completed=day)

        result = asyncio.run(
            simulate_book(project, book, events, days=total, start=start, progress=advance)
        )
    if fmt == "json":
        click.echo(to_json(result))
    else:
        print_book(result, out_console)


def _team(root: Path, team: Path | None) -> list[SimTeamMember]:
    from engine.simulation import load_team

    path = team or root / "examples" / "team.yaml"
    return load_team(path) if path.is_file() else []


def _simulate_one(
    plan: CompiledPlan,
    root: Path,
    customer_file: Path,
    members: list[SimTeamMember],
    *,
    start: datetime | None,
    days: int | None,
    trigger: str | None,
    events: tuple[str, ...],
    completions: tuple[str, ...],
) -> Timeline:
    """Run one simulation, with the project's health scorecard when it has one; input
    errors raise `SimulationInputError`."""
    import asyncio

    from engine.project import scorecard_only
    from engine.simulation import (
        Simulator,
        load_customer,
        parse_completion,
        parse_event,
        parse_trigger,
    )

    customer = load_customer(customer_file)
    trigger_event = parse_trigger(trigger) if trigger is not None else None
    scheduled = [parse_event(e) for e in events]
    tasks = [parse_completion(c) for c in completions]

    async def run() -> Timeline:
        async with Simulator() as sim:
            return await sim.run(
                plan,
                customer,
                team=members,
                start=start,
                days=days,
                events=scheduled,
                completions=tasks,
                trigger=trigger_event,
                scorecard=card,
            )

    card = scorecard_only(root)
    with err_console.status("simulating on the time-skipping server..."):
        return asyncio.run(run())


async def _simulate_all(root: Path, team: Path | None, fmt: str) -> bool:
    """Simulate every plan against every example customer and print one row per run."""
    from rich.progress import Progress
    from rich.table import Table

    from engine.project import load_project
    from engine.simulation import Simulator, load_customer

    project = load_project(root)
    for diag in project.errors:
        click.echo(str(diag), err=True)
    customers = [
        load_customer(p)
        for p in sorted((root / "examples").glob("*.y*ml"))
        if p.name != "team.yaml"
    ]
    members = _team(root, team)
    table = Table(title="simulations of every playbook and example customer")
    columns = ("playbook", "customer", "outcome", "days", "emails", "tasks", "problems")
    for column in columns:
        table.add_column(column)
    failed = bool(project.errors)
    summaries: list[dict[str, object]] = []
    runs = [(plan, c) for plan in project.plans.values() for c in customers]
    async with Simulator() as sim:
        with Progress(
            console=err_console, transient=True, disable=not err_console.is_terminal
        ) as progress:
            bar = progress.add_task("simulating", total=len(runs))
            for plan, customer in runs:
                timeline = await sim.run(plan, customer, team=members)
                broken = [e for e in timeline.emails if e.status == OutboxStatus.FAILED]
                failed = failed or bool(broken)
                problems = [f"{e.step}: {e.reason}" for e in broken]
                problems += [w for w in timeline.warnings if "still running" not in w]
                summary: dict[str, object] = {
                    "playbook": plan.playbook,
                    "customer": customer.id,
                    "outcome": timeline.outcome,
                    "days": timeline.timeline[-1].day if timeline.timeline else 0,
                    "emails": sum(1 for e in timeline.emails if e.status == OutboxStatus.CAPTURED),
                    "tasks": sum(1 for e in timeline.timeline if e.kind == "task"),
                    "problems": problems,
                }
                summaries.append(summary)
                table.add_row(*(str(summary[c]) for c in columns[:-1]), "; ".join(problems) or "-")
                progress.advance(bar)
    if fmt == "json":
        click.echo(json.dumps({"failed": failed, "runs": summaries}, indent=2, ensure_ascii=False))
    else:
        out_console.print(table)
    return failed
