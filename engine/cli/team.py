"""Team members: their access to the web UI (``team disable``, ``team enable``, ``team remove``,
``team unlock``) and their working calendar (``team calendar``), for an operator with the
database at hand (the API has the same)."""

from __future__ import annotations

import click

from engine.cli.context import err_console, store


@click.group()
def team() -> None:
    """Disable, enable, remove team members, end a login lockout, set working calendars."""


def _or_exit(action: str, email: str) -> None:
    from engine.errors import NotFound
    from engine.services import team as members

    _, sessions = store()
    operations = {
        "disable": members.disable_member,
        "enable": members.enable_member,
        "remove": members.remove_member,
    }
    try:
        operations[action](sessions, email)
    except NotFound as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise SystemExit(1) from None


@team.command("disable")
@click.argument("email")
def team_disable(email: str) -> None:
    """Refuse EMAIL's logins and end their web sessions now; their tasks stay theirs."""
    _or_exit("disable", email)


@team.command("enable")
@click.argument("email")
def team_enable(email: str) -> None:
    """Let a disabled EMAIL log in again."""
    _or_exit("enable", email)


@team.command("remove")
@click.argument("email")
def team_remove(email: str) -> None:
    """Delete EMAIL: their web sessions end and their open tasks become unassigned."""
    _or_exit("remove", email)


@team.command("unlock")
@click.argument("email")
def team_unlock(email: str) -> None:
    """End a lockout of failed logins on EMAIL before it runs out."""
    from engine.services import team as members

    _, sessions = store()
    if not members.unlock_member(sessions, email):
        click.echo(f"{email} had no failed logins counted")


@team.command("calendar")
@click.argument("email")
@click.option("--timezone", help="IANA time zone, e.g. Europe/Berlin.")
@click.option("--days", help="Working days, e.g. mon-fri or mon,tue,thu.")
@click.option("--hours", help="Working hours, e.g. 09:00-17:30.")
@click.option(
    "--off",
    multiple=True,
    help="Time off, FIRST..LAST or one DATE (ISO dates, inclusive); repeat for more. "
    "Replaces the member's time off.",
)
@click.option("--clear-off", is_flag=True, help="Remove all time off.")
def team_calendar(
    email: str,
    timezone: str | None,
    days: str | None,
    hours: str | None,
    off: tuple[str, ...],
    clear_off: bool,
) -> None:
    """Show or set when EMAIL works: their tasks' due dates and escalations follow it."""
    from datetime import date

    from engine.errors import Invalid, NotFound
    from engine.language.workdays import WEEKDAYS, parse_days, parse_hours
    from engine.services import team as members

    _, sessions = store()
    try:
        time_off = [
            (date.fromisoformat(a), date.fromisoformat(b or a))
            for a, _, b in (o.partition("..") for o in off)
        ]
        data = members.CalendarData(
            timezone=timezone,
            working_days=parse_days(days) if days else None,
            hours=parse_hours(hours) if hours else None,
            time_off=time_off if off or clear_off else None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    try:
        if timezone or days or hours or off or clear_off:
            member = members.set_calendar(sessions, email, data)
        else:
            member = members.get_member(sessions, email)
    except (NotFound, Invalid) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise SystemExit(1) from None
    start, end = member.work_start_minute, member.work_end_minute
    click.echo(f"{member.email}: {member.timezone}")
    click.echo(f"  works {', '.join(WEEKDAYS[d] for d in member.working_days) or 'never'}")
    click.echo(f"  hours {start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    for first, last in member.time_off:
        click.echo(f"  off   {first}..{last}")


@team.command("notify")
def team_notify() -> None:
    """Tell team members about their new, due-today and escalated tasks.

    Posts each task event once to Slack and the outbound webhook (when configured) and
    emails each member one digest a day. Idempotent: run it daily, or hourly, from cron.
    """
    from datetime import UTC, datetime

    from activities.mailer import mailer_from_settings
    from activities.notifier import HttpNotifier
    from engine.services.notifications import notify_team

    settings, sessions = store()
    key = settings.sendgrid_api_key
    mailer = mailer_from_settings(key.get_secret_value() if key else None, settings.sendgrid_host)
    secret = settings.notify_webhook_secret
    notifier = HttpNotifier(secret.get_secret_value().encode() if secret else None)
    report = notify_team(sessions, settings, notifier, mailer, datetime.now(UTC))
    sent = ", ".join(f"{n} {status}" for status, n in sorted(report.deliveries.items()))
    click.echo(f"notifications: {sent or 'none'}; digests emailed: {report.digests}")
    if report.failed:
        err_console.print(f"[red]{len(report.failed)} still failing; the next run retries them[/]")
        raise SystemExit(1)
