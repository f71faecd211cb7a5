"""Figures and how they are shown: a rich table, JSON, or a Markdown table for RESULTS.md."""

from __future__ import annotations

import json
import math
import os
import platform
import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, JustifyMethod
from rich.table import Table


@dataclass
class Metric:
    """One row: the engine's figure, the baseline's, and the goal it is held to."""

    scenario: str
    name: str
    unit: str
    engine: float | None
    baseline: float | None = None
    goal: str = ""
    met: bool | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.engine is None or not self.baseline:
            return None
        return self.engine / self.baseline

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


@dataclass
class Report:
    """Everything one run of the harness found, with what is needed to reproduce it."""

    command: str
    sizes: dict[str, Any]
    metrics: list[Metric] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    seconds: float = 0.0

    @property
    def machine(self) -> dict[str, Any]:
        return {
            "nproc": len(os.sched_getaffinity(0)),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "date": self.started.isoformat(timespec="seconds"),
            "command": self.command,
            "machine": self.machine,
            "sizes": self.sizes,
            "seconds": round(self.seconds, 1),
            "metrics": [m.as_json() for m in self.metrics],
            "failures": self.failures,
            "ok": not self.failures,
        }

    def dumps(self) -> str:
        return json.dumps(self.as_json(), indent=2, default=str)


def number(value: float | None, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 100:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return f"{text} {unit}".strip()


def ratio_text(metric: Metric) -> str:
    return "-" if metric.ratio is None else f"{metric.ratio:.2f}"


def met_text(metric: Metric) -> str:
    return {True: "yes", False: "NO", None: ""}[metric.met]


def table(report: Report) -> Table:
    t = Table(title=f"engine vs hand-written Temporal ({report.machine['nproc']} cores)")
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("scenario", "left"),
        ("figure", "left"),
        ("engine", "right"),
        ("baseline", "right"),
        ("engine/baseline", "right"),
        ("goal", "left"),
        ("met", "center"),
    )
    for column, justify in columns:
        t.add_column(column, justify=justify)
    for m in report.metrics:
        style = None if m.met is None else ("green" if m.met else "red")
        t.add_row(
            m.scenario,
            m.name + (f" [dim]({m.note})[/]" if m.note else ""),
            number(m.engine, m.unit),
            number(m.baseline, m.unit),
            ratio_text(m),
            m.goal,
            f"[{style}]{met_text(m)}[/]" if style else met_text(m),
        )
    return t


def print_report(report: Report, console: Console) -> None:
    console.print(table(report))
    for failure in report.failures:
        console.print(f"[bold red]FAILED[/] {failure}", highlight=False)
    console.print(
        f"{'FAILED' if report.failures else 'ok'}: {len(report.metrics)} figures in "
        f"{report.seconds:.0f} s; {report.command}",
        highlight=False,
    )


def markdown(report: Report) -> str:
    machine = report.machine
    lines = [
        f"- date: {report.started:%Y-%m-%d %H:%M} UTC",
        f"- machine: `nproc` = {machine['nproc']}, Python {machine['python']}, "
        f"{machine['platform']}",
        f"- command: `{report.command}` ({report.seconds:.0f} s)",
        f"- sizes: {', '.join(f'{k}={v}' for k, v in report.sizes.items())}",
        "",
        "| scenario | figure | engine | baseline | engine/baseline | goal | met |",
        "|---|---|---:|---:|---:|---|:-:|",
    ]
    for m in report.metrics:
        name = m.name + (f" ({m.note})" if m.note else "")
        lines.append(
            f"| {m.scenario} | {name} | {number(m.engine, m.unit)} | "
            f"{number(m.baseline, m.unit)} | {ratio_text(m)} | {m.goal} | {met_text(m)} |"
        )
    for failure in report.failures:
        lines.append(f"\n**FAILED**: {failure}")
    return "\n".join(lines) + "\n"


def percentile(values: list[float], pct: float) -> float:
    """Linear-interpolated percentile (like numpy's default) of a non-empty list."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def ratio_interval(
    engine: Sequence[Sequence[float]],
    baseline: Sequence[Sequence[float]],
    pct: float,
    draws: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    *,
    paired: bool = False,
) -> tuple[float, float]:
    """How far the ratio of two percentiles could be from what one run measured: the
    ``confidence`` interval of engine / baseline ``pct``-th percentile, by block bootstrap.

    Each side is a list of blocks: samples that go together, such as the events sent in
    one second of one round. A high percentile of a few hundred samples is set by a handful
    of them, and slow samples come in runs (a collector pause or a busy second slows every
    event in flight), so whole blocks are drawn with replacement, not single samples, which
    would make the interval look narrower than it is. Seeded: the same samples give the same
    interval.

    ``paired``: block ``i`` of each side was measured at about the same time (the variants
    took turns), so both sides draw the same block numbers, and what slowed both at once
    does not widen the interval.
    """
    if not engine or not baseline:
        raise ValueError("both sides need at least one block of samples")
    if paired and len(engine) != len(baseline):
        raise ValueError(f"paired blocks differ in number: {len(engine)} and {len(baseline)}")
    rng = random.Random(seed)

    def draw(blocks: Sequence[Sequence[float]], picks: Sequence[int]) -> float:
        return percentile([x for i in picks for x in blocks[i]], pct)

    def ratio() -> float:
        picks = [rng.randrange(len(engine)) for _ in engine]
        if not paired:
            return draw(engine, picks) / draw(
                baseline, [rng.randrange(len(baseline)) for _ in baseline]
            )
        return draw(engine, picks) / draw(baseline, picks)

    ratios = sorted(ratio() for _ in range(draws))
    tail = (1 - confidence) / 2 * 100
    return percentile(ratios, tail), percentile(ratios, 100 - tail)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def median_time(scenario: str, name: str, seconds: list[float], limit: float, note: str) -> Metric:
    """The median of timed runs (no baseline), held to a goal of under ``limit`` seconds."""
    metric = Metric(
        scenario, name, "s", median(seconds), goal=f"< {limit:g} s", note=f"median of {note}"
    )
    metric.met = metric.engine is not None and metric.engine < limit
    return metric
