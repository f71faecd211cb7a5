"""The ``playbook`` command: validate, graph, schema, compile, and (later) run.

Each subcommand is a thin layer over the engine's Python API, so everything the CLI does
can also be done (and is tested) from Python.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from pathlib import Path

import click
from rich.console import Console

from engine.errors import PlaybookError
from engine.statuses import OutboxStatus

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


root_option = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("playbooks"),
    show_default=True,
    help="Project folder: playbooks, milestones.yaml, templates/ and examples/.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="playbook-engine")
def main() -> None:
    """Customer-success playbooks as code, run durably on Temporal.

    Write playbooks in YAML under playbooks/, check them with `playbook validate`, see
    them with `playbook graph`, and run them with `playbook up`.
    """


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems, no summary.")
def validate(paths: tuple[Path, ...], strict: bool, quiet: bool) -> None:
    """Check playbooks and report every problem as path:line:col: message.

    PATHS are playbook files or folders (default: playbooks/). A folder is a project: its
    milestones.yaml and templates/ are loaded with it. Exits 0 when there are no errors
    (warnings are printed but do not fail, unless --strict), 1 otherwise.
    """
    from engine.project import load_paths

    targets = list(paths) or [Path("playbooks")]
    if not paths and not targets[0].is_dir():
        raise click.UsageError("no playbooks/ folder here; name a file or folder to validate")
    projects = load_paths(targets)
    errors = warnings = compiled = 0
    for project in projects:
        for diag in project.diagnostics:
            click.echo(str(diag))
        errors += len(project.errors)
        warnings += len(project.warnings)
        compiled += len(project.plans)
        if not quiet:
            for pid, plan in sorted(project.plans.items()):
                err_console.print(
                    f"[green]ok[/] {project.files[pid]}: {pid} "
                    f"({len(plan.steps)} steps, version {plan.short_version})"
                )
    if not quiet:
        colour = "red" if errors else "green"
        err_console.print(
            f"[{colour}]{compiled} playbook(s) compiled, {errors} error(s), "
            f"{warnings} warning(s)[/]"
        )
    if errors or (strict and warnings):
        sys.exit(1)


@main.command()
@click.argument("playbook")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid"]),
    default="mermaid",
    show_default=True,
    help="Output format.",
)
@root_option
def graph(playbook: str, fmt: str, root: Path) -> None:
    """Print a Mermaid flowchart of a playbook (by id or file path)."""
    from engine.language.graph import to_mermaid

    plan = _plan_or_exit(playbook, root)
    click.echo(to_mermaid(plan), nl=False)


@main.command()
@click.argument("playbook")
@root_option
def compile(playbook: str, root: Path) -> None:
    """Print the compiled plan (JSON) of a playbook, as the workflow receives it."""
    plan = _plan_or_exit(playbook, root)
    click.echo(json.dumps(plan.model_dump(mode="json"), indent=2, ensure_ascii=False))


@main.command()
@click.option("--milestones", is_flag=True, help="The schema of milestones.yaml instead.")
def schema(milestones: bool) -> None:
    """Print the JSON Schema of the playbook language (for editors and CI)."""
    from engine.language.json_schema import milestones_schema, playbook_schema

    data = milestones_schema() if milestones else playbook_schema()
    click.echo(json.dumps(data, indent=2))


@main.command()
@click.argument("playbook", required=False)
@click.option(
    "--customer",
    "customer_file",
    type=click.Path(dir_okay=False, path_type=Path),
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
    type=click.Path(dir_okay=False, path_type=Path),
    help="Team file (CSMs and managers). Default: <project>/examples/team.yaml.",
)
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option(
    "--html",
    "html_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the timeline as an HTML page with every email viewable.",
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
    events: tuple[str, ...],
    completions: tuple[str, ...],
    team: Path | None,
    fmt: str,
    html_file: Path | None,
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
      playbook simulate renewal --customer playbooks/examples/thornbury-capital.yaml --days 365
      playbook simulate --all-fixtures
    """
    import asyncio

    from engine.errors import SimulationInputError

    try:
        if all_fixtures:
            failed = asyncio.run(_simulate_all(root, team))
            sys.exit(1 if failed else 0)
        if not playbook or not customer_file:
            raise click.UsageError("name a PLAYBOOK and --customer (or use --all-fixtures)")
        asyncio.run(
            _simulate_one(
                playbook,
                customer_file,
                start,
                days,
                events,
                completions,
                team,
                fmt,
                html_file,
                root,
            )
        )
    except SimulationInputError as exc:
        click.echo(str(exc), err=True)
        sys.exit(2)


def _team(root: Path, team: Path | None) -> list:  # list[SimTeamMember]
    from engine.simulation import load_team

    path = team or root / "examples" / "team.yaml"
    return load_team(path) if path.is_file() else []


async def _simulate_one(
    playbook: str,
    customer_file: Path,
    start: datetime | None,
    days: int | None,
    events: tuple[str, ...],
    completions: tuple[str, ...],
    team: Path | None,
    fmt: str,
    html_file: Path | None,
    root: Path,
) -> None:
    from engine.simulation import (
        Simulator,
        load_customer,
        parse_completion,
        parse_event,
    )
    from engine.simulation.view import print_table, to_html, to_json

    plan = _plan_or_exit(playbook, root)
    customer = load_customer(customer_file)
    scheduled = [parse_event(e) for e in events]
    tasks = [parse_completion(c) for c in completions]
    with err_console.status("simulating on the time-skipping server..."):
        async with Simulator() as sim:
            timeline = await sim.run(
                plan,
                customer,
                team=_team(root, team),
                start=start,
                days=days,
                events=scheduled,
                completions=tasks,
            )
    if fmt == "json":
        click.echo(to_json(timeline))
    else:
        print_table(timeline, Console(highlight=False, width=max(out_console.width, 140)))
    if html_file:
        html_file.write_text(to_html(timeline), encoding="utf-8")
        err_console.print(f"wrote {html_file}")


async def _simulate_all(root: Path, team: Path | None) -> bool:
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
    for column in ("playbook", "customer", "outcome", "days", "emails", "tasks", "problems"):
        table.add_column(column)
    failed = bool(project.errors)
    runs = [(plan, c) for plan in project.plans.values() for c in customers]
    async with Simulator() as sim:
        with Progress(console=err_console, transient=True) as progress:
            bar = progress.add_task("simulating", total=len(runs))
            for plan, customer in runs:
                timeline = await sim.run(plan, customer, team=members)
                broken = [e for e in timeline.emails if e.status == OutboxStatus.FAILED]
                failed = failed or bool(broken)
                problems = [f"{e.step}: {e.reason}" for e in broken]
                problems += [w for w in timeline.warnings if "still running" not in w]
                last_day = timeline.timeline[-1].day if timeline.timeline else 0
                table.add_row(
                    plan.playbook,
                    customer.id,
                    timeline.outcome,
                    str(last_day),
                    str(sum(1 for e in timeline.emails if e.status == OutboxStatus.CAPTURED)),
                    str(sum(1 for e in timeline.timeline if e.kind == "task")),
                    "; ".join(problems) or "-",
                )
                progress.advance(bar)
    out_console.print(table)
    return failed


@main.command()
@click.option("--demo", is_flag=True, help="Seed demo customers, a team and a usage stream.")
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address.")
@click.option("--port", default=8000, show_default=True, type=int, help="HTTP port.")
@click.option(
    "--temporal/--no-temporal",
    "dev_server",
    default=True,
    show_default=True,
    help="Start the local Temporal dev server (--no-temporal: connect to "
    "TEMPORAL_ADDRESS, e.g. a cluster or Temporal Cloud).",
)
@click.option("--temporal-port", default=7233, show_default=True, type=int)
@click.option("--temporal-ui-port", default=8233, show_default=True, type=int)
def up(
    demo: bool,
    root: Path,
    host: str,
    port: int,
    dev_server: bool,
    temporal_port: int,
    temporal_ui_port: int,
) -> None:
    """Start everything: Temporal (dev server), database, worker, API and web UI.

    Data lives in PLAYBOOK_HOME (default ./.playbook): the app database and Temporal's
    own SQLite file, so enrollments survive a restart. Stop with Ctrl-C.
    """
    import asyncio

    from engine.settings import get_settings
    from engine.stack import UpOptions
    from engine.stack import up as run_up

    options = UpOptions(
        root=root,
        host=host,
        port=port,
        demo=demo,
        dev_server=dev_server,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
    )
    try:
        asyncio.run(run_up(get_settings(), options, err_console))
    except PlaybookError as exc:
        for diag in exc.diagnostics:
            click.echo(str(diag), err=True)
        sys.exit(1)
    _exit_after_clean_shutdown()


@main.command()
def worker() -> None:
    """Run a worker against TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE until Ctrl-C."""
    import asyncio
    import logging

    from worker import run_worker

    logging.basicConfig(level=logging.INFO)
    asyncio.run(run_worker())
    _exit_after_clean_shutdown()


def _exit_after_clean_shutdown() -> None:
    """Leave without interpreter finalization once everything has shut down.

    Everything has stopped and been flushed by now; what remains are the Temporal core's
    native threads, which can abort the process (SIGABRT) if Python finalizes around them.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@main.group()
def token() -> None:
    """Manage API tokens (stored hashed; shown once)."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Create an API token called NAME and print it (the only time it is shown)."""
    from engine.api.auth import create_api_token
    from engine.settings import get_settings
    from engine.store.db import migrate, session_factory

    settings = get_settings()
    migrate(settings.database_url)
    with session_factory(settings.database_url).begin() as session:
        click.echo(create_api_token(session, name))


# -- operators: enroll, status, events, customers -------------------------------------------
_ROOT_OPTION = click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("playbooks"),
    show_default=True,
    help="Project folder.",
)


def _store():  # -> (Settings, sessionmaker)
    from engine.settings import get_settings
    from engine.store.db import migrate, session_factory

    settings = get_settings()
    migrate(settings.database_url)
    return settings, session_factory(settings.database_url)


async def _temporal_client(settings):  # -> temporalio.client.Client
    from engine.client.connection import connect

    try:
        return await connect(settings)
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
        raise click.ClickException(
            f"cannot reach Temporal at {settings.temporal_address}: {exc}"
        ) from None


@main.command("enroll")
@click.argument("playbook")
@click.option("--customer", "customer_id", required=True, help="The customer's id.")
@_ROOT_OPTION
def enroll_command(playbook: str, customer_id: str, root: Path) -> None:
    """Enroll a customer in a playbook now, on the configured Temporal.

    The playbook's current version is registered in the store first. Prints the
    enrollment id (the workflow id).
    """
    import asyncio

    from engine.project import load_plan
    from engine.services import ServiceError, Services
    from engine.services.enrollments import enroll_customer
    from engine.store import repository

    try:
        project, plan = load_plan(playbook, root)
    except PlaybookError as exc:
        for diag in exc.diagnostics:
            click.echo(str(diag), err=True)
        sys.exit(1)
    except (KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    settings, sessions = _store()
    with sessions.begin() as session:
        repository.register_playbook_version(
            session,
            playbook_id=plan.playbook,
            version=plan.version,
            name=plan.name,
            source=project.sources.get(plan.playbook, ""),
            plan=plan.model_dump(mode="json"),
        )

    async def start() -> str:
        client = await _temporal_client(settings)
        svc = Services(settings=settings, sessions=sessions, client=client, project=project)
        return (await enroll_customer(svc, plan.playbook, customer_id)).workflow_id

    try:
        workflow_id = asyncio.run(start())
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    err_console.print(f"[green]enrolled[/] {customer_id} in {plan.playbook}@{plan.short_version}")
    click.echo(workflow_id)


@main.command("status")
@click.option("--playbook", help="Only this playbook.")
@click.option("--customer", "customer_id", help="Only this customer.")
@click.option("--status", "status_", help="Only enrollments with this status (running...).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
def status_command(
    playbook: str | None, customer_id: str | None, status_: str | None, limit: int
) -> None:
    """Enrollments from the store, newest first, with their current step and outcome.

    With both --playbook and --customer, also asks the enrollment's workflow where it
    stands now: the step, what it waits for and until when, and its latest records.
    """
    import asyncio

    from rich.table import Table
    from sqlalchemy import select
    from sqlalchemy.orm import InstrumentedAttribute

    from engine.store.models import Enrollment

    settings, sessions = _store()
    query = select(Enrollment).order_by(Enrollment.started_at.desc()).limit(limit)
    filters: tuple[tuple[InstrumentedAttribute[str], str | None], ...] = (
        (Enrollment.playbook_id, playbook),
        (Enrollment.customer_id, customer_id),
        (Enrollment.status, status_),
    )
    for column, value in filters:
        if value:
            query = query.where(column == value)
    with sessions() as session:
        rows = list(session.scalars(query))
    table = Table(title=f"{len(rows)} enrollment(s)", title_justify="left")
    for header in ("enrollment", "version", "status", "step", "outcome", "started", "ended"):
        table.add_column(header, overflow="fold")
    for row in rows:
        table.add_row(
            row.workflow_id,
            row.version[:12],
            row.status,
            row.current_step or "-",
            row.outcome or "-",
            f"{row.started_at:%Y-%m-%d %H:%M}",
            f"{row.ended_at:%Y-%m-%d %H:%M}" if row.ended_at else "-",
        )
    Console(highlight=False, width=max(out_console.width, 120)).print(table)
    if playbook and customer_id and rows:
        asyncio.run(_print_live_status(settings, rows[0].workflow_id))


async def _print_live_status(settings, workflow_id: str) -> None:
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from engine.client.playbook import EnrollmentHandle

    client = await _temporal_client(settings)
    try:
        now = await EnrollmentHandle.get(client, workflow_id).status()
    except (RPCError, WorkflowQueryFailedError) as exc:
        raise click.ClickException(f"cannot ask {workflow_id}: {exc}") from None
    lines = [
        f"[bold]{workflow_id}[/] (asked Temporal)",
        f"  step:        {now.current_step or '-'}"
        + ("  [yellow](paused)[/]" if now.paused else ""),
        f"  waiting for: {now.waiting_for or '-'}"
        + (f" until {now.waiting_until:%Y-%m-%d %H:%M} UTC" if now.waiting_until else ""),
        f"  steps done:  {now.steps_done}",
        f"  milestones:  {', '.join(now.milestones) or '-'}",
        f"  outcome:     {now.outcome or '-'}",
    ]
    for record in now.records[-8:]:
        lines.append(
            f"    {record.at:%Y-%m-%d %H:%M}  {record.step:<20} {record.kind:<10} {record.detail}"
        )
    for line in lines:
        out_console.print(line, soft_wrap=True)


@main.group("events")
def events_group() -> None:
    """Send events as the product or a CRM would."""


def _properties(pairs: tuple[str, ...]) -> dict:
    """key=value pairs; values that read as JSON (numbers, true, null, {...}) are JSON."""
    properties = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="PROPERTIES")
        try:
            properties[key] = json.loads(raw)
        except ValueError:
            properties[key] = raw
    return properties


def _aware(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint="--at") from None
    if at.tzinfo is None:
        raise click.BadParameter(
            f"{value!r} has no UTC offset; add one, e.g. {value}Z or {value}+02:00",
            param_hint="--at",
        )
    return at


@events_group.command("send")
@click.argument("customer_id")
@click.argument("name")
@click.argument("properties", nargs=-1)
@click.option("--id", "event_id", help="The event's id (default: a new one); repeats are ignored.")
@click.option("--at", "at", help="When it happened, ISO 8601 with offset (default: now).")
@_ROOT_OPTION
def events_send(
    customer_id: str,
    name: str,
    properties: tuple[str, ...],
    event_id: str | None,
    at: str | None,
    root: Path,
) -> None:
    """Send event NAME for CUSTOMER_ID with optional key=value PROPERTIES.

    The event is stored, sent to the customer's running enrollments, and starts the
    playbooks it triggers, exactly as POST /api/events does. Exits 1 for an unknown
    customer (the event is stored all the same).

    \b
    Example:
      playbook events send acme integration.connected source=salesforce seats=12
    """
    import asyncio
    import uuid

    from temporalio.service import RPCError

    from engine.client.routing import EventRouter
    from engine.project import load_project

    values = _properties(properties)
    when = _aware(at)
    project = load_project(root)
    if project.errors:
        for diag in project.errors:
            click.echo(str(diag), err=True)
        sys.exit(1)
    settings, sessions = _store()

    async def send():  # -> RoutedEvent
        client = await _temporal_client(settings)
        router = EventRouter(
            sessions, client, project.plans, project.milestones, settings.temporal_task_queue
        )
        return await router.handle(
            event_id or f"cli-{uuid.uuid4().hex}", customer_id, name, when, values
        )

    try:
        routed = asyncio.run(send())
    except RPCError as exc:
        raise click.ClickException(f"Temporal: {exc.message} (the event is stored)") from None
    colour = {"accepted": "green", "duplicate": "yellow"}.get(routed.status, "red")
    err_console.print(f"[{colour}]{routed.status}[/] {name} for {customer_id} (id {routed.id})")
    for workflow_id in routed.signalled:
        err_console.print(f"  signalled {workflow_id}")
    for workflow_id in routed.enrolled:
        err_console.print(f"  [green]enrolled[/] {workflow_id}")
    for note in routed.notes:
        err_console.print(f"  {note}")
    if routed.status == "unknown_customer":
        sys.exit(1)


@main.group("customers")
def customers_group() -> None:
    """Customer data in the store."""


@customers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: the file's extension."
)
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
def customers_import(file: Path, fmt: str | None, dry_run: bool) -> None:
    """Upsert customers and contacts from a CSV or JSON FILE.

    CSV columns: id, name, segment, timezone, owner, renewal_date, health_score,
    contact_email, contact_first_name, contact_last_name, contact_role (one contact per
    row; rows with the same id add contacts to one customer) and attributes.<key>. Bad
    rows are reported (row, field, message) and skipped; the rest is imported. Exits 1
    if any row failed, 2 if the file cannot be read at all.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from engine.errors import ImportFileError
    from engine.services.customers_import import (
        ImportResult,
        plan_import,
        read_rows,
        run_import,
    )

    try:
        rows = read_rows(file, fmt)
    except ImportFileError as exc:
        click.echo(f"{file}: {exc}", err=True)
        sys.exit(2)
    plan = plan_import(rows)
    if dry_run:
        result = ImportResult(rows=plan.rows, errors=plan.errors)
    else:
        _, sessions = _store()
        columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn())
        with Progress(*columns, console=err_console, transient=True) as progress:
            bar = progress.add_task("import", total=len(plan.customers))
            result = run_import(sessions, plan, lambda _: progress.advance(bar))
    for error in result.errors:
        click.echo(f"{file}: {error}", err=True)
    verb = "would import" if dry_run else "imported"
    count = len(plan.customers) if dry_run else result.customers
    summary = f"{verb} {count} customer(s) from {result.rows} row(s)"
    if result.errors:
        err_console.print(f"[red]{summary}; {len(result.failed_rows)} row(s) failed[/]")
        sys.exit(1)
    err_console.print(f"[green]{summary}[/]")


def _plan_or_exit(ref: str, root: Path):
    from engine.project import load_plan

    try:
        return load_plan(ref, root)[1]
    except PlaybookError as exc:
        for diag in exc.diagnostics:
            click.echo(str(diag), err=True)
        sys.exit(1)
    except (KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None


if __name__ == "__main__":
    main()
