"""Feeding the store as the product or a CRM would: ``events send`` and ``customers import``."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli.context import err_console, operator_root_option, run_with_temporal, store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client

    from engine.client.routing import RoutedEvent
    from engine.services.customers_import import ImportResult
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
@click.argument("customer_id")
@click.argument("name")
@click.argument("properties", nargs=-1)
@click.option("--id", "event_id", help="The event's id (default: a new one); repeats are ignored.")
@click.option("--at", "at", help="When it happened, ISO 8601 with offset (default: now).")
@operator_root_option
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
    deployed playbooks it triggers, exactly as POST /api/events does (the playbook files
    on disk are not compiled: a broken one does not block events). When it enrolls
    nobody, the notes say why. Exits 1 for an unknown customer (the event is stored all
    the same).

    \b
    Example:
      playbook events send acme integration.connected source=salesforce seats=12
    """
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
            client,
            sessions,
            plans,
            project.scorecard,
            result.befores,
            result.date_changes,
            datetime.now(UTC),
            settings.temporal_task_queue,
            svc.use_search_attributes,
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
        with Progress(*columns, console=err_console, transient=True) as progress:
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
