"""API tokens: ``token create``, ``token list``, ``token revoke``."""

from __future__ import annotations

import dataclasses
import getpass
import json
from datetime import datetime

import click

from engine.cli.context import err_console, format_option, out_console, store
from engine.scopes import Scope

SCOPE_HELP = (
    "What the token may do (repeat for several): ingest = events and customers; "
    "operate = tasks and enrollments; admin = the team and tokens, and everything else."
)


def _operator() -> str:
    """Who issued a token from the shell, as recorded in its `created_by`."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


@click.group()
def token() -> None:
    """Manage API tokens: scoped, expiring, revocable; stored hashed, shown once."""


@token.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    required=True,
    type=click.Choice([s.value for s in Scope]),
    help=SCOPE_HELP,
)
@click.option(
    "--expires",
    default="90d",
    show_default=True,
    help="Lifetime: a duration such as 90d, 12h or 2w, or 'never'.",
)
def token_create(name: str, scopes: tuple[str, ...], expires: str) -> None:
    """Create an API token called NAME and print it (the only time it is shown)."""
    from engine.services import ServiceError, tokens

    _, sessions = store()
    try:
        expires_at = tokens.expiry(expires)
        with sessions.begin() as session:
            issued = tokens.issue(session, name, scopes, expires_at, _operator())
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    until = f"{expires_at:%Y-%m-%d %H:%M} UTC" if expires_at else "never"
    err_console.print(
        f"[green]created[/] token {issued.info.id} '{issued.info.name}' "
        f"({', '.join(issued.info.scopes)}; expires {until}); it is not shown again:"
    )
    click.echo(issued.secret)


@token.command("list")
@format_option()
def token_list(fmt: str) -> None:
    """Every API token (never its secret): id, name, scopes, state, dates, creator."""
    from rich.table import Table

    from engine.services import tokens

    _, sessions = store()
    with sessions() as session:
        rows = tokens.list_tokens(session)
    if fmt == "json":
        listed = [{**dataclasses.asdict(row), "state": row.state} for row in rows]
        click.echo(json.dumps(listed, indent=2, default=datetime.isoformat, ensure_ascii=False))
        return
    table = Table(title=f"{len(rows)} API token(s)", title_justify="left")
    headers = ("id", "name", "scopes", "state", "created", "by", "expires", "last used", "revoked")
    for header in headers:
        table.add_column(header, overflow="fold")

    def when(value: object) -> str:
        return "-" if value is None else f"{value:%Y-%m-%d %H:%M}"

    for row in rows:
        table.add_row(
            str(row.id),
            row.name,
            ", ".join(row.scopes),
            row.state,
            when(row.created_at),
            row.created_by or "-",
            when(row.expires_at) if row.expires_at else "never",
            when(row.last_used_at),
            when(row.revoked_at),
        )
    out_console.print(table)


@token.command("revoke")
@click.argument("token_id", type=click.IntRange(1, 2**63 - 1))
def token_revoke(token_id: int) -> None:
    """Revoke the API token with id TOKEN_ID (see `token list`); it stops working at once."""
    from engine.services import ServiceError, tokens

    _, sessions = store()
    try:
        with sessions.begin() as session:
            info = tokens.revoke(session, token_id)
    except ServiceError as exc:
        raise click.ClickException(str(exc)) from None
    err_console.print(f"[green]revoked[/] token {info.id} '{info.name}' at {info.revoked_at}")
