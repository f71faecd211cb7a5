"""``playbook report <funnel|ttv|email|tasks|portfolio>``: a report in the terminal.

A table per section for people, ``--format json`` for scripts (the API's JSON), ``--csv``
for a spreadsheet (every table in one CSV, as the API and the web page export it).
"""

from __future__ import annotations

import json
from datetime import datetime

import click

from engine.cli.context import format_option, out_console, store

KINDS = ("funnel", "ttv", "email", "tasks", "portfolio")


@click.command("report")
@click.argument("kind", type=click.Choice(KINDS))
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), help="First day (UTC) covered, YYYY-MM-DD."
)
@click.option(
    "--until", type=click.DateTime(["%Y-%m-%d"]), help="Last day (UTC) covered, YYYY-MM-DD."
)
@click.option("--segment", help="Only customers of this segment.")
@click.option("--playbook", help="Only this playbook.")
@click.option("--version", "version", help="Only this playbook version (or its first characters).")
@click.option(
    "--start",
    type=click.Choice(["customer", "enrollment"]),
    default="customer",
    show_default=True,
    help="Time to value: count from the customer's creation or first enrollment.",
)
@click.option(
    "--page",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Portfolio: which page of the renewals table.",
)
@click.option("--csv", "as_csv", is_flag=True, help="Print CSV (every table, one file).")
@format_option()
def report_command(
    kind: str,
    since: datetime | None,
    until: datetime | None,
    segment: str | None,
    playbook: str | None,
    version: str | None,
    start: str,
    page: int,
    as_csv: bool,
    fmt: str,
) -> None:
    """Show a report: funnel, ttv (time to value), email, tasks or portfolio.

    \b
    Examples:
      playbook report funnel --playbook onboarding --since 2026-01-01
      playbook report email --format json
      playbook report tasks --csv > tasks.csv
    """
    from rich.table import Table

    from engine.errors import ServiceError
    from engine.services import reports
    from engine.services.reports import ReportFilters

    filters = ReportFilters.model_validate(
        {
            "since": since.date() if since else None,
            "until": until.date() if until else None,
            "segment": segment,
            "playbook": playbook,
            "version": version,
            "start": start,
            "page": page,
        }
    )
    _, sessions = store()
    try:
        with sessions() as session:
            report = reports.build(session, kind, filters)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    if as_csv:
        click.echo(report.to_csv(), nl=False)
        return
    if fmt == "json":
        click.echo(json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return
    for section in report.tables:
        table = Table(title=f"{report.title}: {section.title}", title_justify="left")
        for column in section.columns:
            table.add_column(
                column.label, justify="left" if column.kind == "text" else "right", overflow="fold"
            )
        for row in section.rows:
            cells = []
            for column in section.columns:
                cell = row.get(column.key)
                value = None if cell is None else cell.value
                if value is None:
                    cells.append("-")
                elif column.kind == "rate" and isinstance(value, float | int):
                    cells.append(f"{100 * value:.1f}%")
                else:
                    cells.append(str(value))
            table.add_row(*cells)
        out_console.print(table)
    for note in report.notes:
        out_console.print(note, markup=False)
