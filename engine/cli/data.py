"""Feeding the store as the product or a CRM would: ``events send`` and ``customers import``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli.context import (
    err_console,
    format_option,
    operator_root_option,
    run_with_temporal,
    store,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client

    from engine.client.routing import RoutedEvent
    from engine.services.customers_import import ImportResult
    from engine.services.events_file import Judged
    from engine.settings import Settings


@click.group("events")
def events_group() -> None:
    """Send events as the product or a CRM would."""


def _properties(pairs: tuple[str, ...]) -> dict[str, Any]:
    """key=value pairs; values that read as JSON (numbers, true, null, {...}) are JSON."""
    properties: dict[str, Any] = {}
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
    """The --at time, which must carry a UTC offset; None (meaning now) when not given."""
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
@click.argument("customer_id", required=False)
@click.argument("name", required=False)
@click.argument("properties", nargs=-1)
@click.option("--id", "event_id", help="The event's id (default: a new one); repeats are ignored.")
@click.option("--at", "at", help="When it happened, ISO 8601 with offset (default: now).")
@click.option(
    "--file",
    "file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    help="Send the events in FILE (.jsonl, .ndjson, .json, .csv; - for JSON Lines on stdin).",
)
@click.option(
    "--generate-ids",
    is_flag=True,
    help="With --file: give an event without id a new one (sending again stores it again).",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1000),  # MAX_BATCH; not imported, to keep `playbook --help` fast
    default=1000,
    show_default=True,
    help="With --file: events per store transaction.",
)
@format_option("With --file: json prints the summary and every event not accepted on stdout.")
@operator_root_option
def events_send(
    customer_id: str | None,
    name: str | None,
    properties: tuple[str, ...],
    event_id: str | None,
    at: str | None,
    file: str | None,
    generate_ids: bool,
    batch_size: int,
    fmt: str,
    root: Path,
) -> None:
    """Send event NAME for CUSTOMER_ID with optional key=value PROPERTIES, or every event
    in a file with --file.

    The event is stored, sent to the customer's running enrollments, and starts the
    deployed playbooks it triggers, exactly as POST /api/events does (the playbook files
    on disk are not compiled: a broken one does not block events). When it enrolls
    nobody, the notes say why. Exits 1 for an unknown customer (the event is stored all
    the same).

    With --file, each event is checked with the API's rules and the good ones are sent
    in batches (one store transaction each, as a POST /api/events batch). Formats, by
    extension: JSON Lines (.jsonl, .ndjson: one event object per line; - reads them from
    stdin), JSON (.json: a list of events or {"events": [...]}) and CSV (.csv: columns id,
    customer_id, name, at, and any other column is a property; a cell that reads as JSON
    is JSON). An event is {"id", "customer_id", "name", "at", "properties"}: id is
    required (repeats are ignored) unless --generate-ids, at needs a UTC offset (default:
    when its batch is sent). Each bad line is reported as FILE:LINE: field: message (in a
    JSON list, the item's number), then a summary of accepted, duplicate,
    unknown_customer and invalid events and of the enrollments signalled and started.

    Exit status: 0 when every event was accepted or a duplicate; 1 when any was invalid
    or for an unknown customer (the others are stored and routed all the same, and so
    are the events for unknown customers); 2 for a usage error or a file that cannot be
    read.

    \b
    Examples:
      playbook events send acme integration.connected source=salesforce seats=12
      playbook events send --file history.jsonl
      playbook events send --file export.csv --generate-ids --format json
      cat events.jsonl | playbook events send --file -
    """
    if file is not None:
        if customer_id is not None or event_id is not None or at is not None:
            raise click.UsageError(
                "--file sends the events in FILE: give no CUSTOMER_ID, NAME, PROPERTIES, "
                "--id or --at with it"
            )
        _send_file(file, generate_ids, batch_size, fmt, root)
        return
    ctx = click.get_current_context()
    given = [
        option
        for option, param in (("--generate-ids", "generate_ids"), ("--batch-size", "batch_size"))
        if ctx.get_parameter_source(param) != click.core.ParameterSource.DEFAULT
    ]
    if fmt != "table":
        given.append("--format")
    if given:
        raise click.UsageError(f"{', '.join(given)}: only with --file")
    if customer_id is None or name is None:
        raise click.UsageError("give CUSTOMER_ID and NAME, or --file FILE")
    _send_one(customer_id, name, properties, event_id, at, root)


def _send_one(
    customer_id: str,
    name: str,
    properties: tuple[str, ...],
    event_id: str | None,
    at: str | None,
    root: Path,
) -> None:
    """One event from the command line, through `EventRouter.handle`."""
    import uuid

    from temporalio.service import RPCError

    from engine.project import milestones_only
    from engine.services import Services

    values = _properties(properties)
    when = _aware(at)
    project = milestones_only(root)
    settings, sessions = store()

    async def send(client: Client) -> RoutedEvent:
        svc = Services(settings=settings, sessions=sessions, client=client, project=project)
        return await svc.router.handle(
            event_id or f"cli-{uuid.uuid4().hex}", customer_id, name, when, values
        )

    try:
        routed = run_with_temporal(settings, send)
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


def _read_file(file: str) -> tuple[str, str]:
    """The text of ``file`` (``-``: stdin, as JSON Lines) and its format; exits 2 if the
    file cannot be read."""
    from engine.errors import ImportFileError
    from engine.services.events_file import file_format

    try:
        if file == "-":
            return sys.stdin.read(), "jsonl"
        fmt = file_format(file)
        return Path(file).read_text(encoding="utf-8-sig"), fmt
    except (ImportFileError, OSError, UnicodeDecodeError) as exc:
        click.echo(f"{file}: {exc}", err=True)
        sys.exit(2)


def _send_file(file: str, generate_ids: bool, batch_size: int, fmt: str, root: Path) -> None:
    """Every event of ``file``: the bad ones reported by line, the good ones sent in batches
    through `EventRouter.handle_batch`, then the summary."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
    from temporalio.service import RPCError

    from engine.errors import ImportFileError
    from engine.project import milestones_only
    from engine.services import Services
    from engine.services.events_file import judge, read_items, send_in_batches, summary

    text, file_fmt = _read_file(file)
    where = "<stdin>" if file == "-" else file
    try:
        judged = judge(read_items(text, file_fmt), generate_ids)
    except ImportFileError as exc:
        click.echo(f"{where}: {exc}", err=True)
        sys.exit(2)
    good = [j for j in judged if j.event is not None]
    events = [j.event for j in good if j.event is not None]
    answers: list[RoutedEvent] = []
    if events:
        project = milestones_only(root)
        settings, sessions = store()
        columns = (TextColumn("sending"), BarColumn(), MofNCompleteColumn())
        with Progress(
            *columns,
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,  # piped: no bar, and no blank line left
        ) as progress:
            bar = progress.add_task("send", total=len(events))

            async def send(client: Client) -> list[RoutedEvent]:
                svc = Services(settings=settings, sessions=sessions, client=client, project=project)
                return await send_in_batches(
                    svc.router, events, batch_size, lambda done: progress.advance(bar, len(done))
                )

            try:
                answers = run_with_temporal(settings, send)
            except RPCError as exc:
                raise click.ClickException(
                    f"Temporal: {exc.message}; the events of the batches sent so far, and of "
                    "the one that failed, are stored (sent again, they are duplicates)"
                ) from None
    counts = summary(judged, answers)
    lines = [j.item.line for j in good]
    refused: list[tuple[int, dict[str, Any]]] = [
        (j.item.line, {"line": j.item.line, "status": "invalid", "errors": _errors(j.errors)})
        for j in judged
        if j.event is None
    ]
    refused += [
        (line, {"line": line, "id": a.id, "status": a.status, "notes": a.notes})
        for line, a in zip(lines, answers, strict=True)
        if a.status != "accepted"
    ]
    results = [result for _, result in sorted(refused, key=lambda r: r[0])]
    failed = counts["invalid"] + counts["unknown_customer"] > 0
    if fmt == "json":
        click.echo(json.dumps({"summary": counts, "results": results}, indent=2))
    else:
        _print_file_result(where, judged, lines, answers, counts, failed)
    if failed:
        sys.exit(1)


def _errors(errors: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"field": where, "message": message} for where, message in errors]


def _print_file_result(
    where: str,
    judged: list[Judged],
    lines: list[int],
    answers: list[RoutedEvent],
    counts: dict[str, int],
    failed: bool,
) -> None:
    """The bad lines, FILE:LINE: field: message, in order, then the summary line."""
    problems = [(j.item.line, f"{field}: {message}") for j in judged for field, message in j.errors]
    problems += [
        (line, f"customer_id: {note}")
        for line, a in zip(lines, answers, strict=True)
        if a.status == "unknown_customer"
        for note in a.notes
    ]
    for line, problem in sorted(problems, key=lambda p: p[0]):
        click.echo(f"{where}:{line}: {problem}", err=True)
    colour = "red" if failed else "green"
    err_console.print(
        f"[{colour}]{counts['events']} event(s) from {where}: {counts['accepted']} accepted, "
        f"{counts['duplicate']} duplicate, {counts['unknown_customer']} unknown customer, "
        f"{counts['invalid']} invalid; {counts['signalled']} enrollment(s) signalled, "
        f"{counts['started']} started[/]"
    )


def _react_to_import(
    settings: Settings, sessions: sessionmaker[Session], root: Path, result: ImportResult
) -> None:
    """What an API save does, for each imported customer: tell its running enrollments
    what moved and enroll it in the deployed ``on_change`` playbooks the import made true."""
    from datetime import UTC

    from temporalio.service import RPCError

    from engine.project import milestones_only
    from engine.services import Services
    from engine.services.customers import import_needs_temporal, react_to_import
    from engine.store.deployments import DeployedPlans

    plans = DeployedPlans(sessions).plans()
    if not import_needs_temporal(sessions, plans, result.befores):
        return
    project = milestones_only(root)

    async def react(client: Client) -> tuple[list[str], list[str], list[str]]:
        svc = Services(settings=settings, sessions=sessions, client=client, project=project)
        return await react_to_import(
            svc.change_target,
            plans,
            project.scorecard,
            result.befores,
            result.date_changes,
            datetime.now(UTC),
        )

    try:
        signalled, started, notes = run_with_temporal(settings, react)
    except (RPCError, RuntimeError) as exc:  # RuntimeError: Temporal cannot be reached
        message = exc.message if isinstance(exc, RPCError) else str(exc)
        err_console.print(
            f"[yellow]Temporal: {message}; the running enrollments of the "
            f"{len(result.befores)} imported customer(s) were not told of the changes, and "
            "no on_change playbook was started[/]"
        )
        return
    for workflow_id in signalled:
        err_console.print(f"  changed: told {workflow_id}")
    for workflow_id in started:
        err_console.print(f"  [green]enrolled[/] {workflow_id}")
    for note in notes:
        err_console.print(f"  {note}")


@click.group("customers")
def customers_group() -> None:
    """Customer data in the store."""


@customers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "json"]), help="Default: the file's extension."
)
@click.option("--dry-run", is_flag=True, help="Check every row, write nothing.")
@operator_root_option
def customers_import(file: Path, fmt: str | None, dry_run: bool, root: Path) -> None:
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
        settings, sessions = store()
        columns = (TextColumn("importing"), BarColumn(), MofNCompleteColumn())
        with Progress(
            *columns,
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,  # piped: no bar, and no blank line left
        ) as progress:
            bar = progress.add_task("import", total=len(plan.customers))
            result = run_import(sessions, plan, lambda _: progress.advance(bar))
        _react_to_import(settings, sessions, root, result)
    for error in result.errors:
        click.echo(f"{file}: {error}", err=True)
    verb = "would import" if dry_run else "imported"
    count = len(plan.customers) if dry_run else result.customers
    summary = f"{verb} {count} customer(s) from {result.rows} row(s)"
    if result.errors:
        err_console.print(f"[red]{summary}; {len(result.failed_rows)} row(s) failed[/]")
        sys.exit(1)
    err_console.print(f"[green]{summary}[/]")
