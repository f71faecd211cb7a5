"""API tokens: ``token create``."""

from __future__ import annotations

import click

from engine.cli.context import store


@click.group()
def token() -> None:
    """Manage API tokens (stored hashed; shown once)."""


@token.command("create")
@click.argument("name")
def token_create(name: str) -> None:
    """Create an API token called NAME and print it (the only time it is shown)."""
    from engine.api.auth import create_api_token

    _, sessions = store()
    with sessions.begin() as session:
        click.echo(create_api_token(session, name))
