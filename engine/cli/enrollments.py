"""Enrollments by hand: ``enroll`` a customer now, and the ``status`` of enrollments."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from engine.cli.context import (
    err_console,
    format_option,
    operator_root_option,
    out_console,
    run_with_temporal,
    store,
)

if TYPE_CHECKING:
    from temporalio.client import Client

    from engine.messages import EnrollmentSnapshot
    from engine.store.models import Enrollment


@click.command("enroll")
@click.argument("playbook")
@click.option("--customer", "customer_id", required=True, help="The customer's id.")
@operator_root_option
def enroll_command(playbook: str, customer_id: str, root: Path) -> None:
    """Enroll a customer in a playbook's deployed version now, on the configured Temporal.

    Prints the enrollment id (the workflow id), and a note when the working copy in
    --root differs from the deployed version (`playbook deploy` makes it current).
    """
    from engine.project import milestones_only
    from engine.services import ServiceError, Services
    from engine.services.enrollments import enroll_customer

    settings, sessions = store()

    async def start(client: Client) -> Enrollment:
        svc = Services(
            settings=settings, sessions=sessions, client=client, project=milestones_only(root)
        )
        return await enroll_customer(svc, playbook, customer_id)

    try:
        row = run_with_temporal(settings, start)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    err_console.print(f"[green]enrolled[/] {customer_id} in {playbook}@{row.version[:12]}")
    _note_working_copy(playbook, row.version, root)
    click.echo(row.workflow_id)


def _note_working_copy(playbook: str, deployed: str, root: Path) -> None:
    """Say so when the playbook's file in ``root`` compiles to another version."""
    from engine.project import load_project

    path = root / f"{playbook}.yaml"
    if not path.is_file():
        return
    working = load_project(root, [path]).plans.get(playbook)
    if working is not None and working.version != deployed:
        err_console.print(
            f"[yellow]note[/] the working copy ({working.short_version}) differs from the "
            f"deployed version: playbook deploy {playbook}"
        )


@click.command("status")
@click.option("--playbook", help="Only this playbook.")
@click.option("--customer", "customer_id", help="Only this customer.")
@click.option("--status", "status_", help="Only enrollments with this status (running...).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@format_option("json: one object with the enrollments and, when asked, the workflow's answer.")
def status_command(
    playbook: str | None, customer_id: str | None, status_: str | None, limit: int, fmt: str
) -> None:
    """The deployed version of each playbook (marked when it is a rollback), then
    enrollments from the store, newest first, with their current step and outcome.

    With both --playbook and --customer, also asks the enrollment's workflow where it
    stands now: the step, what it waits for and until when, and its latest records.
    """
    from engine.cli.deploy import deployed_rows
    from engine.store import repository

    settings, sessions = store()
    with sessions() as session:
        rows = repository.list_enrollments(
            session, playbook_id=playbook, customer_id=customer_id, status=status_, limit=limit
        )
        deployed = deployed_rows(session, playbook)
    now = None
    workflow_id = rows[0].workflow_id if rows else ""
    if playbook and customer_id and rows:
        now = run_with_temporal(settings, lambda client: _ask(client, workflow_id))
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "deployed": deployed,
                    "enrollments": [_enrollment_json(row) for row in rows],
                    "now": now.model_dump(mode="json") if now else None,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    _print_deployed(deployed)
    _print_enrollments(rows)
    if now:
        _print_live_status(workflow_id, now)


def _enrollment_json(row: Enrollment) -> dict[str, object]:
    return {
        "enrollment": row.workflow_id,
        "playbook": row.playbook_id,
        "customer": row.customer_id,
        "version": row.version,
        "status": row.status,
        "step": row.current_step,
        "outcome": row.outcome,
        "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


def _print_deployed(deployed: list[dict[str, object]]) -> None:
    for item in deployed:
        rollback = item["rollback_from"]
        out_console.print(
            f"deployed {item['playbook']}@{str(item['version'])[:12]} "
            f"({str(item['deployed_at'])[:16].replace('T', ' ')} UTC by {item['deployed_by']})"
            + (f" [yellow]rollback[/]: {str(rollback)[:12]} is newer" if rollback else ""),
            soft_wrap=True,
        )


def _print_enrollments(rows: Sequence[Enrollment]) -> None:
    from rich.table import Table

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
    out_console.print(table)


async def _ask(client: Client, workflow_id: str) -> EnrollmentSnapshot:
    """The enrollment's own answer (the `status` query); a readable error if it has none."""
    from temporalio.client import WorkflowQueryFailedError
    from temporalio.service import RPCError

    from engine.client.playbook import EnrollmentHandle

    try:
        return await EnrollmentHandle.get(client, workflow_id).status()
    except (RPCError, WorkflowQueryFailedError) as exc:
        raise click.ClickException(f"cannot ask {workflow_id}: {exc}") from None


def _print_live_status(workflow_id: str, now: EnrollmentSnapshot) -> None:
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
