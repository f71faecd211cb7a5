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
    load_plan_or_exit,
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
    """Enroll a customer in a playbook now, on the configured Temporal.

    The playbook's current version is registered in the store first. Prints the
    enrollment id (the workflow id).
    """
    from engine.services import ServiceError, Services
    from engine.services.enrollments import enroll_customer
    from engine.store import repository

    project, plan = load_plan_or_exit(playbook, root)
    settings, sessions = store()
    with sessions.begin() as session:
        repository.register_playbook_version(
            session,
            playbook_id=plan.playbook,
            version=plan.version,
            name=plan.name,
            source=project.sources.get(plan.playbook, ""),
            plan=plan.model_dump(mode="json"),
        )

    async def start(client: Client) -> str:
        svc = Services(settings=settings, sessions=sessions, client=client, project=project)
        return (await enroll_customer(svc, plan.playbook, customer_id)).workflow_id

    try:
        workflow_id = run_with_temporal(settings, start)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    err_console.print(f"[green]enrolled[/] {customer_id} in {plan.playbook}@{plan.short_version}")
    click.echo(workflow_id)


@click.command("status")
@click.option("--playbook", help="Only this playbook.")
@click.option("--customer", "customer_id", help="Only this customer.")
@click.option("--status", "status_", help="Only enrollments with this status (running...).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@format_option("json: one object with the enrollments and, when asked, the workflow's answer.")
def status_command(
    playbook: str | None, customer_id: str | None, status_: str | None, limit: int, fmt: str
) -> None:
    """Enrollments from the store, newest first, with their current step and outcome.

    With both --playbook and --customer, also asks the enrollment's workflow where it
    stands now: the step, what it waits for and until when, and its latest records.
    """
    from engine.store import repository

    settings, sessions = store()
    with sessions() as session:
        rows = repository.list_enrollments(
            session, playbook_id=playbook, customer_id=customer_id, status=status_, limit=limit
        )
    now = None
    workflow_id = rows[0].workflow_id if rows else ""
    if playbook and customer_id and rows:
        now = run_with_temporal(settings, lambda client: _ask(client, workflow_id))
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "enrollments": [_enrollment_json(row) for row in rows],
                    "now": now.model_dump(mode="json") if now else None,
                },
                indent=2,
                ensure_ascii=False,
            )
        )
        return
    _print_enrollments(rows)
    if now:
        _print_live_status(workflow_id, now)


def _enrollment_json(row: Enrollment) -> dict[str, object]:
    return {
        "enrollment": row.workflow_id,
        "run": row.enrollment_key,
        "playbook": row.playbook_id,
        "customer": row.customer_id,
        "version": row.version,
        "status": row.status,
        "step": row.current_step,
        "outcome": row.outcome,
        "started_at": row.started_at.isoformat(),
        "ended_at": row.ended_at.isoformat() if row.ended_at else None,
    }


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
