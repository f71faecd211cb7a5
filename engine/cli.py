"""The ``playbook`` command: validate, graph, schema, compile, and (later) run.

Each subcommand is a thin layer over the engine's Python API, so everything the CLI does
can also be done (and is tested) from Python.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from engine.diagnostics import PlaybookError

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="playbook-engine")
def main() -> None:
    """Customer-success playbooks as code, run durably on Temporal.

    Write playbooks in YAML under playbooks/, check them with `playbook validate`, see
    them with `playbook graph`, and run them with `playbook up`.
    """


@main.command()
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


@main.command()
@click.argument("playbook")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid"]),
    default="mermaid",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("playbooks"),
    show_default=True,
    help="Project folder for ids.",
)
def graph(playbook: str, fmt: str, root: Path) -> None:
    """Print a Mermaid flowchart of a playbook (by id or file path)."""
    from engine.graph import to_mermaid

    plan = _plan_or_exit(playbook, root)
    click.echo(to_mermaid(plan), nl=False)


@main.command()
@click.argument("playbook")
@click.option(
    "--root",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("playbooks"),
    show_default=True,
    help="Project folder for ids.",
)
def compile(playbook: str, root: Path) -> None:
    """Print the compiled plan (JSON) of a playbook, as the workflow receives it."""
    plan = _plan_or_exit(playbook, root)
    click.echo(json.dumps(plan.model_dump(mode="json"), indent=2, ensure_ascii=False))


@main.command()
@click.option("--milestones", is_flag=True, help="The schema of milestones.yaml instead.")
def schema(milestones: bool) -> None:
    """Print the JSON Schema of the playbook language (for editors and CI)."""
    from engine.json_schema import milestones_schema, playbook_schema

    data = milestones_schema() if milestones else playbook_schema()
    click.echo(json.dumps(data, indent=2))


def _plan_or_exit(ref: str, root: Path):
    from engine.project import load_plan

    try:
        return load_plan(ref, root)[1]
    except PlaybookError as exc:
        for diag in exc.diagnostics:
            click.echo(str(diag), err=True)
        sys.exit(1)
    except (KeyError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None


if __name__ == "__main__":
    main()
