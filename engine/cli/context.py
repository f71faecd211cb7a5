"""What the command groups share: the consoles, the ``--root`` options, and the way a
command reaches the project, the store and Temporal.

Everything heavy (the store, the Temporal SDK, the compiler) is imported inside the
functions, so importing this module keeps ``playbook --help`` fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console

from engine.errors import PlaybookError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client

    from engine.language.plan import CompiledPlan
    from engine.project import Project
    from engine.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


def _root_option(help_text: str) -> Callable[[F], F]:
    """``--root``, the project folder, with a help text that suits the command."""
    return click.option(
        "--root",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("playbooks"),
        show_default=True,
        help=help_text,
    )


root_option = _root_option("Project folder: playbooks, milestones.yaml, templates/ and examples/.")
# The operator commands (enroll, events send) say it more briefly.
operator_root_option = _root_option("Project folder.")


def load_plan_or_exit(ref: str, root: Path) -> tuple[Project, CompiledPlan]:
    """The project and plan of ``ref`` (an id or a file); print the problems and exit if not."""
    from engine.project import load_plan

    try:
        return load_plan(ref, root)
    except PlaybookError as exc:
        for diag in exc.diagnostics:
            click.echo(str(diag), err=True)
        sys.exit(1)
    except (KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None


def plan_or_exit(ref: str, root: Path) -> CompiledPlan:
    """The plan of ``ref`` (an id or a file), as `load_plan_or_exit` finds it."""
    return load_plan_or_exit(ref, root)[1]


def store() -> tuple[Settings, sessionmaker[Session]]:
    """The configured settings and a session factory on the migrated database."""
    from engine.settings import get_settings
    from engine.store.db import migrate, session_factory

    settings = get_settings()
    migrate(settings.database_url)
    return settings, session_factory(settings.database_url)


async def temporal_client(settings: Settings) -> Client:
    """A client for the configured Temporal; a readable error when it cannot be reached."""
    from engine.client.connection import connect

    try:
        return await connect(settings)
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
        raise click.ClickException(
            f"cannot reach Temporal at {settings.temporal_address}: {exc}"
        ) from None
