"""What the command groups share: the consoles, the ``--root`` options, and the way a
command reaches the project, the store and Temporal.

Everything heavy (the store, the Temporal SDK, the compiler) is imported inside the
functions, so importing this module keeps ``playbook --help`` fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console, ConsoleDimensions

from engine.errors import PlaybookError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client
    from temporalio.runtime import Runtime

    from engine.language.plan import CompiledPlan
    from engine.project import Project
    from engine.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

# Wide enough for any row a command prints: piped output is never wrapped nor cut.
PIPED_WIDTH = 10_000


class PipeAwareConsole(Console):
    """A console that fits a terminal, and never wraps or truncates anything else.

    Rich sizes output that is not a terminal at 80 columns (or at the size of whatever
    terminal stdin is), cutting table cells to "dashboard_..." and wrapping ids mid-word in
    files and CI logs. Here, output to anything but a terminal is as wide as its content.
    """

    @property
    def size(self) -> ConsoleDimensions:
        dimensions = super().size
        if self._writes_to_tty():
            return dimensions
        return ConsoleDimensions(PIPED_WIDTH, dimensions.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size

    def _writes_to_tty(self) -> bool:
        try:
            return self.file.isatty()
        except (AttributeError, ValueError):  # a closed or file-like stream
            return False


err_console = PipeAwareConsole(stderr=True, highlight=False)
out_console = PipeAwareConsole(highlight=False)


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
# A worker takes its playbooks from the database; only the scorecard comes from the folder.
worker_root_option = _root_option(
    "Project folder: its health.yaml is the scorecard `update` steps recompute health with."
)


def format_option(help_text: str | None = None) -> Callable[[F], F]:
    """``--format table|json``: a table for people, JSON for scripts (``fmt`` in the command)."""
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help=help_text,
    )


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
    from engine.store.db import engine_for, migrate, session_factory

    settings = get_settings()
    migrate(settings.database_url)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # close the command's database connections when it ends
        ctx.call_on_close(engine_for(settings.database_url).dispose)
    return settings, session_factory(settings.database_url)


def run_with_temporal(settings: Settings, work: Callable[[Client], Coroutine[Any, Any, T]]) -> T:
    """Run ``work(client)`` to completion, on a Temporal runtime that ends with it.

    The client and its runtime are dropped before this returns, once the core's threads
    have left Python, so no native thread is left to race the interpreter's exit (see
    `engine.client.runtime`).
    """
    import asyncio
    import gc

    from engine.client.runtime import settle_core_threads, short_lived_runtime

    async def run(runtime: Runtime) -> T:
        return await work(await temporal_client(settings, runtime))

    runtime = short_lived_runtime()
    try:
        return asyncio.run(run(runtime))
    finally:
        settle_core_threads()
        del runtime
        gc.collect()  # the client sits in reference cycles; freeing it frees the runtime,
        # whose drop joins the core's threads


def settle() -> None:
    """Before the process may exit: let Temporal's native threads leave Python.

    Covers the commands whose clients stay on a shared runtime (the simulator's).
    """
    if "temporalio.runtime" in sys.modules:
        from engine.client.runtime import settle_core_threads

        settle_core_threads()


async def temporal_client(settings: Settings, runtime: Runtime | None = None) -> Client:
    """A client for the configured Temporal; a readable error when it cannot be reached."""
    from engine.client.connection import connect

    try:
        return await connect(settings, runtime)
    except RuntimeError as exc:  # the SDK's "Failed client connect: ..."
        raise click.ClickException(
            f"cannot reach Temporal at {settings.temporal_address}: {exc}"
        ) from None
