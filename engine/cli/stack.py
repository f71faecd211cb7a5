"""Running the system: ``up`` (everything on one machine) and ``worker`` (a worker alone)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from engine.cli.context import err_console, root_option, worker_root_option
from engine.errors import PlaybookError


@click.command()
@click.option("--demo", is_flag=True, help="Seed demo customers, a team and a usage stream.")
@root_option
@click.option("--host", default="127.0.0.1", show_default=True, help="HTTP bind address.")
@click.option("--port", default=8000, show_default=True, type=int, help="HTTP port.")
@click.option(
    "--temporal/--no-temporal",
    "dev_server",
    default=True,
    show_default=True,
    help="Start the local Temporal dev server (--no-temporal: connect to "
    "TEMPORAL_ADDRESS, e.g. a cluster or Temporal Cloud).",
)
@click.option("--temporal-port", default=7233, show_default=True, type=int)
@click.option("--temporal-ui-port", default=8233, show_default=True, type=int)
@click.option(
    "--api-processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, 64),
    help="HTTP API processes sharing the port (Linux): about one core each for events.",
)
def up(
    demo: bool,
    root: Path,
    host: str,
    port: int,
    dev_server: bool,
    temporal_port: int,
    temporal_ui_port: int,
    api_processes: int,
) -> None:
    """Start everything: Temporal (dev server), database, worker, API and web UI.

    Data lives in PLAYBOOK_HOME (default ./.playbook): the app database and Temporal's
    own SQLite file, so enrollments survive a restart. Stop with Ctrl-C.
    """
    import asyncio

    from engine.settings import get_settings
    from engine.stack import UpOptions
    from engine.stack import up as run_up

    options = UpOptions(
        root=root,
        host=host,
        port=port,
        demo=demo,
        dev_server=dev_server,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        api_processes=api_processes,
    )
    try:
        asyncio.run(run_up(get_settings(), options, err_console))
    except PlaybookError as exc:
        for diag in exc.diagnostics:
            click.echo(str(diag), err=True)
        sys.exit(1)
    _exit_after_clean_shutdown()


@click.command()
@worker_root_option
def worker(root: Path) -> None:
    """Run a worker against TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE until Ctrl-C.

    Playbooks come from the database (what `playbook deploy` or `playbook up` deployed);
    only the health scorecard is read from --root, so that an `update` step setting a field
    a measure reads moves the customer's score at once, as on `playbook up`.
    """
    import asyncio
    import logging

    from engine.language.health import HEALTH_FILE, load_scorecard
    from engine.project import display_path
    from worker import run_worker

    logging.basicConfig(level=logging.INFO)
    path = root / HEALTH_FILE
    loaded = load_scorecard(path, display_path(path)) if path.is_file() else None
    for diag in loaded.diagnostics if loaded else []:
        click.echo(str(diag), err=True)
    if loaded is not None and loaded.model is None:
        # Steps still run; the daily recompute (its Schedule carries its own copy) scores.
        click.echo(
            f"{path}: not valid: `update` steps will not recompute health "
            "(the daily recompute still does)",
            err=True,
        )
    asyncio.run(run_worker(scorecard=loaded.model if loaded else None))
    _exit_after_clean_shutdown()


def _exit_after_clean_shutdown() -> None:
    """Leave without interpreter finalization once everything has shut down.

    Everything has stopped and been flushed by now; what remains are the Temporal core's
    native threads, which can abort the process (SIGABRT) if Python finalizes around them.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
