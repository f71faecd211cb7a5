"""Team members' access to the web UI: ``team disable``, ``team enable``, ``team remove``,
``team unlock``, for an operator with the database at hand (the API has the same)."""

from __future__ import annotations

import click

from engine.cli.context import err_console, store


@click.group()
def team() -> None:
    """Disable, enable, remove team members, or end a login lockout."""


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
