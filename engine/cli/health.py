"""``playbook health <customer>``: a customer's health score, band, measures and trend.

Computed now from the store with the project's scorecard (``health.yaml``), without writing
it; the trend is read from the recorded history (`engine.store.health`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from engine.cli.context import format_option, out_console, root_option, store

TRENDS = (7, 30, 90)


@click.command("health")
@click.argument("customer")
@root_option
@click.option("--save", is_flag=True, help="Record the score (today's history point).")
@format_option()
def health_command(customer: str, root: Path, save: bool, fmt: str) -> None:
    """Show a customer's health: score, band, each measure with its value and
    contribution, each risk signal (on, off or unknown) and the trend.

    \b
    Examples:
      playbook health acme
      playbook health acme --format json
    """
    from rich.table import Table

    from engine.project import scorecard_only
    from engine.store import health
    from engine.store.models import Customer

    card = scorecard_only(root)
    if card is None:
        raise click.ClickException(
            f"no valid {root / 'health.yaml'}; check it with `playbook validate {root}`"
        )
    _, sessions = store()
    now = datetime.now(UTC)
    with sessions.begin() as session:
        row = session.get(Customer, customer)
        if row is None:
            raise click.ClickException(f"no customer '{customer}'")
        result = health.compute(session, card, row, now)
        points = [(p.day, p.score) for p in health.history(session, customer)]
        if save:
            health.record(session, row, result, now)
    trend = health.trend_of([*points, (now.date(), result.score)], now.date())
    trends = {f"{days}d": trend(days) for days in TRENDS}
    if fmt == "json":
        data = {
            "customer": customer,
            "score": result.score,
            "band": result.band,
            "known": result.known,
            "trend": trends,
            "measures": [
                {
                    "name": m.name,
                    "label": m.label,
                    "value": m.value,
                    "points": m.points,
                    "weight": m.weight,
                    "contribution": m.contribution,
                }
                for m in result.measures
            ],
            "signals": [{"name": sig.name, **sig.as_dict()} for sig in result.signals],
        }
        click.echo(json.dumps(data, indent=2))
        return
    score = "unknown" if result.score is None else str(result.score)
    out_console.print(
        f"{customer}: health {score} ({result.band}), {result.known:.0%} of the scorecard known"
    )
    shown = ", ".join(f"{k} {'?' if v is None else f'{v:+d}'}" for k, v in trends.items())
    out_console.print(f"trend: {shown}")
    table = Table("measure", "value", "points", "weight", "contribution")
    for m in result.measures:
        table.add_row(
            m.label,
            "unknown" if m.value is None else f"{m.value:g}",
            "" if m.points is None else f"{m.points:g}",
            f"{m.weight:g}",
            "" if m.contribution is None else f"{m.contribution:g}",
        )
    out_console.print(table)
    if result.signals:
        signals = Table("risk signal", "on", "why")
        for sig in result.signals:
            on = {True: "yes", False: "no", None: "unknown"}[sig.on]
            signals.add_row(sig.name, on, sig.text)
        out_console.print(signals)
