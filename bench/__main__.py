"""``python -m bench`` (also ``playbook-bench``): the engine against hand-written Temporal.

See bench/README.md for what each scenario measures; bench/RESULTS.md for the figures.
Exits 1 if any run did not do all of its work exactly once (or any scenario failed).
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichProgress

from bench.report import Metric, Report, markdown, print_report
from bench.scenarios import DEFAULT_SCENARIOS, QUICK, SCENARIOS, Sizes, run_scenarios

FC = TypeVar("FC", bound=Callable[..., Any])


class BarProgress:
    """One bar per phase (a run's enrollments, events, ...), on stderr."""

    def __init__(self, progress: RichProgress) -> None:
        self.progress = progress
        self.current: TaskID | None = None

    def phase(self, description: str, total: float) -> Callable[[float], None]:
        if self.current is not None:
            self.progress.remove_task(self.current)
        task = self.progress.add_task(description, total=total)
        self.current = task
        return lambda done: self.progress.update(task, completed=done)


def size_option(name: str, kind: click.ParamType, help: str) -> Callable[[FC], FC]:
    """``--<name>``, which sets `Sizes.<name>`; its default is the one `Sizes` gives."""
    flag = "--" + name.replace("_", "-")
    return click.option(flag, type=kind, default=getattr(Sizes, name), show_default=True, help=help)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@size_option(
    "enrollments",
    click.IntRange(1),
    "Throughput: enrollments per run (the issue's full size: 1000).",
)
@size_option("rate", click.FloatRange(min=0.1), "Latency: events posted per second.")
@size_option("events", click.IntRange(2), "Latency: events (parked customers) per run.")
@size_option(
    "latency_slice",
    click.IntRange(0),
    "Latency: the variants take turns sending, this many seconds of events each, so a "
    "spell that slows the machine shows in all of them (a diagnosis; see bench/README.md). "
    "0: each variant's round whole, one after the other.",
)
@size_option(
    "parked",
    click.IntRange(1),
    "Memory: enrollments parked on a wait per run (the issue's full size: 10000).",
)
@size_option(
    "rounds",
    click.IntRange(1),
    "Runs per variant of each Temporal scenario, alternating who goes first.",
)
@size_option("sim_runs", click.IntRange(1), "Simulation: runs (the median is reported).")
@size_option("book_customers", click.IntRange(1), "Book: customers in the synthetic book.")
@size_option("book_days", click.IntRange(1, 800), "Book: days simulated.")
@size_option("health_customers", click.IntRange(1), "Health: customers in the daily recompute.")
@size_option("health_days", click.IntRange(1, 800), "Health: days of events per customer.")
@size_option(
    "health_events", click.IntRange(1), "Health: events posted per variant (scorecard, none)."
)
@size_option(
    "database_url",
    click.STRING,
    "Health: also recompute on this PostgreSQL server (a throwaway database; default: "
    "$DATABASE_URL_POSTGRES if set).",
)
@size_option("ingest_events", click.IntRange(1000), "Ingest: events posted in batches of 1,000.")
@size_option("sweep_customers", click.IntRange(1), "Sweep: customers in the book swept.")
@size_option("compile_steps", click.IntRange(2), "Compile: steps of the generated playbook.")
@size_option("compile_runs", click.IntRange(1), "Compile: runs (the median is reported).")
@size_option("report_customers", click.IntRange(1), "Reports: customers in the store.")
@size_option(
    "report_database",
    click.STRING,
    "Reports: the store's database URL (e.g. PostgreSQL); one that already holds the "
    "customers is reused. Default: a fresh SQLite file.",
)
@size_option(
    "ingest_database",
    click.STRING,
    "Ingest: the store's database URL (e.g. PostgreSQL), migrated and seeded with fresh "
    "customers. Default: the run's store (see --store-database).",
)
@size_option("ingest_processes", click.IntRange(1, 16), "Ingest: API processes on one port.")
@size_option(
    "burst_enrollments", click.IntRange(1), "Burst: enrollments one schedule sweep starts at once."
)
@size_option("burst_workers", click.IntRange(1, 2), "Burst: worker processes on the task queue.")
@size_option(
    "burst_database",
    click.STRING,
    "Burst: a PostgreSQL server URL, where a throwaway database is created for the run. "
    "Default: a fresh SQLite file.",
)
@size_option(
    "stall_timeout",
    click.FloatRange(min=1),
    "Fail a run when nothing progresses for this long (s).",
)
@size_option(
    "temporal_db",
    click.Choice(["memory", "file"]),
    "Dev server persistence: in memory, or a SQLite file (as `playbook up`).",
)
@size_option(
    "store_database",
    click.STRING,
    "Throughput, latency, memory (and ingest, without --ingest-database): the store on this "
    "PostgreSQL server, a throwaway database made for the run and dropped after it. "
    "Default: a fresh SQLite file.",
)
@click.option(
    "--bytecode/--no-bytecode",
    default=True,
    show_default=True,
    help="Byte-compile the project first, as pip install does (--no-bytecode: run the "
    "checkout as it is; see RESULTS.md).",
)
@click.option(
    "--only",
    "only",
    multiple=True,
    type=click.Choice(SCENARIOS),
    help="Run only these scenarios (repeatable). Default: all but book, health, sweep, ingest "
    "and burst.",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Smoke test: tiny sizes and one round (under a minute); sizes given explicitly still win.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as JSON on stdout (the table goes to stderr).",
)
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the table as Markdown (for bench/RESULTS.md).",
)
@click.pass_context
def main(
    ctx: click.Context,
    only: tuple[str, ...],
    quick: bool,
    as_json: bool,
    markdown_path: Path | None,
    **options: object,
) -> None:
    """Benchmark the engine against a hand-written Temporal workflow, side by side."""
    sizes = Sizes()
    for f in fields(Sizes):
        value = options.get(f.name)
        source = ctx.get_parameter_source(f.name)  # None: not a command-line option
        explicit = source not in (None, click.core.ParameterSource.DEFAULT)
        if quick and not explicit and f.name in QUICK:
            value = QUICK[f.name]
        if value is not None:
            setattr(sizes, f.name, value)
    # click names the program "python -m bench" or "playbook-bench", as it was started
    prog = ctx.info_name or "python -m bench"
    report = Report(command=" ".join([prog, *map(shlex.quote, sys.argv[1:])]), sizes=asdict(sizes))
    err = Console(stderr=True)
    out = err if as_json else Console()
    if not out.is_terminal:  # piped or captured: no 80-column wrapping of the table
        out.width = 160
    began = time.perf_counter()
    with RichProgress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bars:

        def add(metrics: list[Metric]) -> None:
            report.metrics.extend(metrics)

        def failed(scenario: str, exc: BaseException) -> None:
            report.failures.append(f"{scenario}: {exc}")

        asyncio.run(run_scenarios(sizes, only or DEFAULT_SCENARIOS, BarProgress(bars), add, failed))
    report.seconds = time.perf_counter() - began
    print_report(report, out)
    if as_json:
        click.echo(report.dumps())
    if markdown_path is not None:
        markdown_path.write_text(markdown(report))
    if report.failures:
        sys.exit(1)


if __name__ == "__main__":
    main()
