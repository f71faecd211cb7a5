"""Writing playbooks: ``validate``, ``graph``, ``compile`` and ``schema``.

These read the project folder only: no store, no Temporal.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from engine.cli.context import err_console, plan_or_exit, root_option


@click.command()
@click.argument("paths", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1).")
@click.option("--quiet", "-q", is_flag=True, help="Print only problems, no summary.")
def validate(paths: tuple[Path, ...], strict: bool, quiet: bool) -> None:
    """Check playbooks and report every problem as path:line:col: message.

    PATHS are playbook files or folders (default: playbooks/). A folder is a project: its
    milestones.yaml and templates/ are loaded with it. Exits 0 when there are no errors
    (warnings are printed but do not fail, unless --strict), 1 otherwise.
    """
    from engine.project import load_paths

    targets = list(paths) or [Path("playbooks")]
    if not paths and not targets[0].is_dir():
        raise click.UsageError("no playbooks/ folder here; name a file or folder to validate")
    projects = load_paths(targets)
    errors = warnings = compiled = 0
    for project in projects:
        for diag in project.diagnostics:
            click.echo(str(diag))
        errors += len(project.errors)
        warnings += len(project.warnings)
        compiled += len(project.plans)
        if not quiet:
            for pid, plan in sorted(project.plans.items()):
                err_console.print(
                    f"[green]ok[/] {project.files[pid]}: {pid} "
                    f"({len(plan.steps)} steps, version {plan.short_version})"
                )
    if not quiet:
        colour = "red" if errors else "green"
        err_console.print(
            f"[{colour}]{compiled} playbook(s) compiled, {errors} error(s), "
            f"{warnings} warning(s)[/]"
        )
    if errors or (strict and warnings):
        sys.exit(1)


@click.command()
@click.argument("playbook")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid"]),
    default="mermaid",
    show_default=True,
    help="Output format.",
)
@root_option
def graph(playbook: str, fmt: str, root: Path) -> None:
    """Print a Mermaid flowchart of a playbook (by id or file path)."""
    from engine.language.graph import to_mermaid

    plan = plan_or_exit(playbook, root)
    click.echo(to_mermaid(plan), nl=False)


@click.command()
@click.argument("playbook")
@root_option
def compile(playbook: str, root: Path) -> None:
    """Print the compiled plan (JSON) of a playbook, as the workflow receives it."""
    plan = plan_or_exit(playbook, root)
    click.echo(json.dumps(plan.model_dump(mode="json"), indent=2, ensure_ascii=False))


@click.command()
@click.option("--milestones", is_flag=True, help="The schema of milestones.yaml instead.")
@click.option("--policies", is_flag=True, help="The schema of policies.yaml instead.")
@click.option("--health", is_flag=True, help="The schema of health.yaml instead.")
def schema(milestones: bool, policies: bool, health: bool) -> None:
    """Print the JSON Schema of the playbook language (for editors and CI)."""
    from engine.language.json_schema import (
        health_schema,
        milestones_schema,
        playbook_schema,
        policies_schema,
    )

    if health:
        data = health_schema()
    elif policies:
        data = policies_schema()
    else:
        data = milestones_schema() if milestones else playbook_schema()
    click.echo(json.dumps(data, indent=2))
