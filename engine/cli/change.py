"""Reviewing a change before deploying it: ``playbook diff``.

The working copy of a playbook against the deployed version (or a registered hash, or
another file): the change in the playbook's terms, the running enrollments it touches, and
a forecast from the book simulation (`engine.services.change`, `engine.simulation.forecast`).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli.context import err_console, format_option, out_console, root_option, store

if TYPE_CHECKING:
    from engine.services.change import ChangeReview

EXAMPLE_CUSTOMER = Path("examples") / "hoshino-logistics.yaml"


@click.command("diff")
@click.argument("playbook")
@click.option(
    "--against",
    default="deployed",
    show_default=True,
    metavar="deployed|HASH|FILE",
    help="What the working copy is compared with.",
)
@click.option("--days", default=30, show_default=True, type=click.IntRange(1, 365))
@click.option("--no-forecast", is_flag=True, help="Skip the book simulation (it takes a while).")
@click.option("--html", "html_file", type=click.Path(path_type=Path), help="Also write a page.")
@format_option("json: the whole review (diff, impact, forecast).")
@root_option
def diff_command(
    playbook: str,
    against: str,
    days: int,
    no_forecast: bool,
    html_file: Path | None,
    fmt: str,
    root: Path,
) -> None:
    """What deploying the working copy of PLAYBOOK would change, and for whom.

    Steps added, removed and reordered; conditions, waits, recipients, task fields and
    emails changed (each changed email rendered before and after for an example customer);
    the running enrollments per step and which of them the change touches under each
    migration policy; and a forecast for the next --days from the book simulation over the
    store's customers (or the example book when the store has none), old against new.

    \b
    Examples:
      playbook diff onboarding
      playbook diff onboarding --against c7fc717a --format json
      playbook diff onboarding --html review.html
    """
    from engine.cli.context import load_plan_or_exit
    from engine.errors import StoreError
    from engine.services import change

    project, new = load_plan_or_exit(playbook, root)
    _, sessions = store()
    with sessions() as session:
        try:
            old, label = change.baseline_plan(session, playbook, against)
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        customer = change.example_customer(session, playbook)
        context: dict[str, Any] | None
        example: str | None
        if customer is not None:
            context = change.store_context(session, customer, playbook)
            example = f"{customer.name} ({customer.id})"
        else:
            context, example = _example_context(root, playbook)
        review = change.review_change(
            session, old, new, against=label, context=context, example=example
        )
        if not no_forecast:
            from engine.simulation.forecast import book_from_store, running_customers

            book = book_from_store(session)
            running = running_customers(session, playbook)
    if not no_forecast:
        from engine.simulation.forecast import forecast_change

        with err_console.status(f"simulating the book for {days} days, old and new"):
            review.forecast = asyncio.run(
                forecast_change(project, old, new, book=book, running=running, days=days)
            )
    if fmt == "json":
        click.echo(review.model_dump_json(indent=2))
    else:
        print_review(review)
    if html_file is not None:
        html_file.write_text(review_page(review), encoding="utf-8")
        err_console.print(f"wrote {html_file}")


def _example_context(root: Path, playbook: str) -> tuple[dict[str, Any] | None, str | None]:
    """The example customer's rendering context, when the project has one."""
    from engine.services.change import data_context
    from engine.simulation.inputs import load_customer

    path = root / EXAMPLE_CUSTOMER
    if not path.is_file():
        return None, None
    customer = load_customer(path)
    return data_context(customer.customer_data(), playbook), f"{customer.name} (example)"


def print_review(review: ChangeReview) -> None:
    """The review as text for the terminal."""
    from rich.table import Table

    d = review.diff
    out = out_console
    out.print(f"[bold]{review.playbook}[/]: {review.against} -> working copy {d.new_version[:12]}")
    if d.empty:
        out.print("no change")
    for word, ids in (("added", d.added), ("removed", d.removed)):
        if ids:
            out.print(f"steps {word}: {', '.join(ids)}")
    if d.reordered:
        out.print(f"steps reordered: {' -> '.join(d.new_order)}")
    if d.steps or d.settings:
        table = Table(title="changed", title_justify="left")
        for header in ("step", "aspect", "field", "before", "after"):
            table.add_column(header, overflow="fold")
        for step in d.steps:
            for c in step.changes:
                table.add_row(step.step, c.aspect, c.path, *_values(c.path, c.before, c.after))
        for c in d.settings:
            table.add_row("(playbook)", c.aspect, c.path, *_values(c.path, c.before, c.after))
        out.print(table)
    for email in review.emails:
        out.print(f"\n[bold]email {email.step}[/] for {review.example_customer}")
        for word, rendered in (("before", email.before), ("after", email.after)):
            if rendered is None:
                out.print(f"  {word}: (new step)")
                continue
            body = rendered.error or rendered.text
            out.print(f"  {word}: [italic]{rendered.subject}[/]", highlight=False)
            out.print("    " + "\n    ".join(body.splitlines()[:12]), highlight=False)
    i = review.impact
    out.print(
        f"\nrunning enrollments: {i.running} ({i.on_deployed} on the deployed version); "
        f"touched under stay: {i.touched('stay')}, under same-id: {i.touched('same-id')} "
        f"({i.refused()} refused)"
    )
    if i.steps:
        table = Table(title="running, per step", title_justify="left")
        for header in ("version", "step", "running", "same-id", "why"):
            table.add_column(header, overflow="fold")
        for s in i.steps:
            verdict = s.same_id + (" (touched)" if s.touched and s.same_id == "moves" else "")
            table.add_row(s.version, s.step, str(s.running), verdict, s.reason)
        out.print(table)
    if review.forecast is not None:
        f = review.forecast
        table = Table(
            title=f"forecast, next {f.days} days ({f.old.customers} customers, {f.source})",
            title_justify="left",
        )
        for header in ("", f"old {f.old.version}", f"new {f.new.version}", "change"):
            table.add_column(header)
        for label, a, b in (
            ("emails per week", f.old.emails_per_week, f.new.emails_per_week),
            ("tasks per CSM per week", f.old.tasks_per_csm_week, f.new.tasks_per_csm_week),
            (f"{review.playbook} enrollments", f.old.enrollments, f.new.enrollments),
            ("reaching the goal", f.old.goal_reached, f.new.goal_reached),
        ):
            table.add_row(label, str(a), str(b), f"{b - a:+g}")
        out.print(table)


def _values(path: str, before: object, after: object) -> tuple[str, str]:
    from engine.services.change import show_value

    return show_value(path, before), show_value(path, after)


def review_page(review: ChangeReview) -> str:
    """The review as a standalone HTML page (the admin diff page's body)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    import engine.web
    from engine.services.change import show_value

    env = Environment(
        loader=FileSystemLoader(Path(engine.web.__file__).parent / "templates"),
        autoescape=select_autoescape(["html"]),
    )
    body = env.get_template("_change_review.html").render(review=review, duration=show_value)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>playbook diff {review.playbook}</title></head><body>"
        f"<h1>playbook diff {review.playbook}</h1>{body}</body></html>"
    )


@click.command("backtest")
@click.argument("playbook")
@click.option(
    "--version",
    "versions",
    multiple=True,
    metavar="HASH",
    help="A registered version (hash or prefix); give two to compare them "
    "(default: the deployed version against the working copy).",
)
@click.option("--since", default="90d", show_default=True, help="How far back: 30d, 12w...")
@format_option("json: each version's outcome.")
@root_option
def backtest_command(
    playbook: str, versions: tuple[str, ...], since: str, fmt: str, root: Path
) -> None:
    """Replay the store's customers and recorded events through two versions of PLAYBOOK.

    Runs the book simulator once per version over the customers in the store and the
    events recorded since --since (the example book when the store is empty) and compares:
    emails and tasks per customer, goal rate, time to goal, and where customers stopped.

    \b
    Examples:
      playbook backtest onboarding
      playbook backtest onboarding --version c7fc717a --version 901af9f6 --since 60d
    """
    from engine.cli.context import load_plan_or_exit
    from engine.errors import DurationError, StoreError
    from engine.language.durations import parse_duration
    from engine.language.plan import CompiledPlan
    from engine.simulation.backtest import backtest
    from engine.store import deployments

    try:
        days = max(1, parse_duration(since) // 86_400)
    except DurationError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    if len(versions) not in (0, 2):
        raise click.UsageError("give --version twice (A and B), or not at all")
    project, working = load_plan_or_exit(playbook, root)
    _, sessions = store()
    with sessions() as session:
        try:
            if versions:
                plans = [
                    CompiledPlan.model_validate(deployments.find_version(session, playbook, v).plan)
                    for v in versions
                ]
            else:
                deployed = deployments.deployed_plan(session, playbook)
                if deployed is None:
                    raise click.ClickException(f"{playbook} was never deployed; name two --version")
                plans = [deployed, working]
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
        with err_console.status(f"replaying {days} days through {len(plans)} versions"):
            result = asyncio.run(backtest(project, plans, session, since_days=days))
    if fmt == "json":
        click.echo(result.model_dump_json(indent=2))
        return
    from rich.table import Table

    table = Table(
        title=f"{playbook}: backtest over {result.days} days from {result.start:%Y-%m-%d} "
        f"({result.sides[0].customers} customers, {result.events} events, {result.source})",
        title_justify="left",
    )
    table.add_column("")
    for side in result.sides:
        table.add_column(side.version)
    rows = (
        ("enrollments", lambda s: str(s.enrollments)),
        ("emails per customer", lambda s: str(s.emails_per_customer)),
        ("tasks per customer", lambda s: str(s.tasks_per_customer)),
        ("goal rate", lambda s: f"{s.goal_rate:.0%}"),
        (
            "median days to goal",
            lambda s: "-" if s.median_days_to_goal is None else str(s.median_days_to_goal),
        ),
        ("stopped", lambda s: ", ".join(f"{k} {v}" for k, v in s.stopped.items()) or "-"),
    )
    for label, show in rows:
        table.add_row(label, *(show(s) for s in result.sides))
    out_console.print(table)
