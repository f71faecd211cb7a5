"""Changing what runs: ``deploy`` (the working copy, or ``--version`` to roll back) and
``history``; the deployed versions also show in ``status`` (`deployed_rows`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from engine.cli.context import err_console, format_option, out_console, root_option, store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker
    from temporalio.client import Client

    from engine.client.deployment import DeployResult
    from engine.language.plan import CompiledPlan
    from engine.services.migration import MigrationItem
    from engine.settings import Settings


def _deployer() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.command("deploy")
@click.argument("playbooks", nargs=-1)
@click.option("-m", "--message", help="Why: recorded with the deployment.")
@click.option(
    "--version",
    "version",
    metavar="HASH",
    help="Deploy this registered version (a hash or a unique prefix) instead of the "
    "working copy: a rollback. Needs exactly one PLAYBOOK.",
)
@click.option("--by", default=_deployer, show_default="your login name", help="Who deploys.")
@click.option(
    "--migrate",
    is_flag=True,
    help="Also move running enrollments to the deployed version (default: they stay on "
    "theirs), each at its next step boundary. Needs exactly one PLAYBOOK.",
)
@click.option(
    "--map",
    "mapping",
    multiple=True,
    metavar="OLD=NEW",
    help="With --migrate: enrollments at step OLD continue at NEW (default: the same id).",
)
@click.option(
    "--dry-run", is_flag=True, help="With --migrate: list who would move where; change nothing."
)
@root_option
def deploy(
    playbooks: tuple[str, ...],
    message: str | None,
    version: str | None,
    by: str,
    migrate: bool,
    mapping: tuple[str, ...],
    dry_run: bool,
    root: Path,
) -> None:
    """Make the working copy of PLAYBOOKS (default: every playbook) the deployed version.

    Each playbook is validated and compiled; if any fails validation nothing is deployed
    (exit 1). Each one whose deployed version differs is registered and recorded as a
    deployment (who, when, the git commit, the message); new enrollments, sweeps and
    `enroll` steps start the deployed version from then on, also in a running
    `playbook up`. Running enrollments stay on the version they started with.

    \b
    Examples:
      playbook deploy onboarding -m "shorter welcome"
      playbook deploy onboarding --version c7fc717a -m "roll back the welcome change"
      playbook deploy onboarding --migrate --map integration_help=invite_team --dry-run
    """
    from engine.client.deployment import deploy_version, deploy_working_copy, git_commit
    from engine.errors import PlaybookError, StoreError

    settings, sessions = store()
    if (mapping or dry_run) and not migrate:
        raise click.UsageError("--map and --dry-run go with --migrate")
    moves = _plan_moves(sessions, playbooks, version, mapping, root) if migrate else None
    if moves is not None and (dry_run or any(i.outcome == "refused" for i in moves[1])):
        _print_moves(moves[1])
        refused = [i for i in moves[1] if i.outcome == "refused"]
        if refused:
            err_console.print(
                f"[red]migration refused[/]: {len(refused)} enrollment(s) have no mapping; "
                "nothing was deployed or moved"
            )
            sys.exit(1)
        err_console.print("dry run: nothing was deployed or moved")
        return
    commit = git_commit(root)
    if version is not None:
        if len(playbooks) != 1:
            raise click.UsageError("--version needs exactly one PLAYBOOK")
        try:
            results = [
                deploy_version(
                    sessions, playbooks[0], version, by=by, message=message, commit=commit
                )
            ]
        except StoreError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        from engine.project import load_project

        if not root.is_dir():
            raise click.ClickException(f"no {root}/ folder here")
        project = load_project(root)
        try:
            results = deploy_working_copy(
                sessions,
                project,
                list(playbooks) or None,
                by=by,
                message=message,
                commit=commit,
            )
        except PlaybookError as exc:
            for diag in exc.diagnostics:
                click.echo(str(diag), err=True)
            err_console.print(
                f"[red]deploy refused[/]: {len(exc.errors)} error(s); nothing was deployed"
            )
            sys.exit(1)
    for result in results:
        err_console.print(_describe(result), highlight=False)
    if moves is not None:
        _migrate(settings, moves, mapping, message)
    if _swept([r.playbook for r in results if r.status == "deployed"], sessions):
        _sync_schedules(settings, sessions)


def _plan_moves(
    sessions: sessionmaker[Session],
    playbooks: tuple[str, ...],
    version: str | None,
    mapping: tuple[str, ...],
    root: Path,
) -> tuple[CompiledPlan, list[MigrationItem]]:
    """The version --migrate moves to, and where each running enrollment would go; a
    mapping naming a step the new version lacks is refused here, before anything moves."""
    from engine.errors import ServiceError, StoreError
    from engine.language.plan import CompiledPlan
    from engine.services import migration
    from engine.store import deployments

    if len(playbooks) != 1:
        raise click.UsageError("--migrate needs exactly one PLAYBOOK")
    with sessions() as session:
        if version is not None:
            try:
                row = deployments.find_version(session, playbooks[0], version)
            except StoreError as exc:
                raise click.ClickException(str(exc)) from None
            new = CompiledPlan.model_validate(row.plan)
        else:
            from engine.cli.context import plan_or_exit

            new = plan_or_exit(playbooks[0], root)
        try:
            steps = migration.parse_mapping(mapping)
        except ServiceError as exc:
            raise click.UsageError(str(exc)) from None
        problems = migration.mapping_problems(new, steps)
        if problems:
            for problem in problems:
                click.echo(problem, err=True)
            err_console.print("[red]migration refused[/]: nothing was deployed or moved")
            sys.exit(1)
        return new, migration.plan_migration(session, new, steps)


def _print_moves(items: list[MigrationItem]) -> None:
    from rich.table import Table

    table = Table(title=f"{len(items)} running enrollment(s)", title_justify="left")
    for header in ("enrollment", "customer", "version", "step", "to", "outcome", "why"):
        table.add_column(header, overflow="fold")
    for i in items:
        outcome = "would migrate" if i.outcome == "migrate" else i.outcome
        table.add_row(i.enrollment, i.customer, i.version, i.step, i.to_step, outcome, i.reason)
    out_console.print(table)


def _migrate(
    settings: Settings,
    moves: tuple[CompiledPlan, list[MigrationItem]],
    mapping: tuple[str, ...],
    message: str | None,
) -> None:
    """Send each enrollment the migrate update and report each one."""
    from engine.cli.context import run_with_temporal
    from engine.services import migration

    new, items = moves

    async def work(client: Client) -> list[MigrationItem]:
        return await migration.migrate(
            client, items, new, migration.parse_mapping(mapping), message
        )

    done = run_with_temporal(settings, work)
    _print_moves(done)
    counts = {o: sum(1 for i in done if i.outcome == o) for o in ("migrated", "stayed", "refused")}
    err_console.print(", ".join(f"{n} {o}" for o, n in counts.items()))


def _swept(playbooks: list[str], sessions: sessionmaker[Session]) -> bool:
    """Whether one of these playbooks now has a date or schedule trigger (a sweep)."""
    from engine.store import deployments

    with sessions() as session:
        plans = [deployments.deployed_plan(session, pid) for pid in playbooks]
    return any(
        plan is not None and plan.trigger is not None and plan.trigger.kind in ("date", "schedule")
        for plan in plans
    )


def _describe(result: DeployResult) -> str:
    label = f"{result.playbook}@{result.short_version}"
    if result.status == "unchanged":
        return f"[dim]unchanged[/] {label} (already deployed)"
    was = f" (was {result.previous[:12]})" if result.previous else " (first deploy)"
    rollback = " [yellow]rollback[/]: newer versions are registered" if result.rollback else ""
    return f"[green]deployed[/] {label}{was}{rollback}"


def _sync_schedules(settings: Settings, sessions: sessionmaker[Session]) -> None:
    """Create or update the sweep Schedules of date/schedule playbooks, if Temporal answers;
    otherwise say so (the next `playbook up` creates them)."""
    from engine.cli.context import run_with_temporal
    from engine.client.deployment import sync_schedules

    async def sync(client: Client) -> list[str]:
        return await sync_schedules(client, sessions, settings.temporal_task_queue)

    try:
        schedules = run_with_temporal(settings, sync)
    except (click.ClickException, RuntimeError):
        err_console.print(
            f"[yellow]schedules not updated[/]: Temporal at {settings.temporal_address} "
            "did not answer; the next `playbook up` (or deploy) updates them"
        )
        return
    if schedules:
        err_console.print(f"schedules {', '.join(schedules)} follow the deployed versions")


@click.command("history")
@click.argument("playbook")
@format_option("json: a list of deployments, newest first.")
def history(playbook: str, fmt: str) -> None:
    """The deployments of PLAYBOOK, newest first: version, when, who, commit, message."""
    from engine.store import deployments

    _, sessions = store()
    with sessions() as session:
        rows = deployments.history(session, playbook)
        registered = deployments.registered_versions(session, playbook)
        order = {v.version: i for i, v in enumerate(registered)}
        # A rollback deploys a version registered before one deployed earlier.
        ranks = [order.get(row.version, -1) for row in rows]
        items = [
            {
                "id": row.id,
                "version": row.version,
                "deployed_at": row.deployed_at.isoformat(),
                "deployed_by": row.deployed_by,
                "git_commit": row.git_commit,
                "message": row.message,
                "current": i == 0,
                "rollback": ranks[i] < max(ranks[i + 1 :], default=-1),
            }
            for i, row in enumerate(rows)
        ]
    if fmt == "json":
        click.echo(json.dumps(items, indent=2, ensure_ascii=False))
        return
    if not items:
        raise click.ClickException(f"{playbook} was never deployed")
    _print_history(playbook, items)


def _print_history(playbook: str, items: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=f"{playbook}: {len(items)} deployment(s)", title_justify="left")
    for header in ("#", "version", "deployed (UTC)", "by", "commit", "message"):
        table.add_column(header, overflow="fold")
    for item in items:
        marks = " (current)" if item["current"] else ""
        marks += " (rollback)" if item["rollback"] else ""
        table.add_row(
            str(item["id"]),
            item["version"][:12] + marks,
            item["deployed_at"][:16].replace("T", " "),
            item["deployed_by"],
            (item["git_commit"] or "-")[:12]
            + ("+dirty" if (item["git_commit"] or "").endswith("+dirty") else ""),
            item["message"] or "-",
        )
    out_console.print(table)


def deployed_rows(session: Session, playbook: str | None = None) -> list[dict[str, Any]]:
    """Each deployed playbook's version (or just ``playbook``'s), for `status`: when, by
    whom, and whether it is a rollback (a newer version is registered)."""
    from engine.store import deployments

    rows = []
    for pid, row in sorted(deployments.current_deployments(session).items()):
        if playbook and pid != playbook:
            continue
        newer = deployments.newer_than(session, pid, row.version)
        rows.append(
            {
                "playbook": pid,
                "version": row.version,
                "deployed_at": row.deployed_at.isoformat(),
                "deployed_by": row.deployed_by,
                "rollback_from": newer.version if newer else None,
            }
        )
    return rows
