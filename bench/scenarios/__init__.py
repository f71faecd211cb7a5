"""The five scenarios of issue 6, one module each, and `run_scenarios`, which runs them.

- `spec`: the variants, `Sizes`, `Progress`, `BenchFailure`;
- `stack`: the dev server, store, API and worker processes the Temporal scenarios share;
- `driver`: starting enrollments, posting events, waiting, verifying, reading histories;
- `throughput`, `latency`, `memory` (on the stack), `simulation`, `compile`, `reports`,
  `delivery` (without it);
- `book` (issue 13: a book of customers over a year), `health` (issue 15: scoring per
  event, the daily recompute of 10,000 customers), `sweep` (issue 20: one trigger sweep
  over 100,000 customers), `ingest` (issue 20: irrelevant events in batches over
  HTTP) and `burst` (issue 20: 10,000 enrollments started by one sweep), only when asked
  for.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence

from bench.report import Metric
from bench.scenarios.book import book
from bench.scenarios.burst import burst
from bench.scenarios.compile import compile_scenario
from bench.scenarios.delivery import delivery
from bench.scenarios.health import health_scenario
from bench.scenarios.ingest import ingest
from bench.scenarios.latency import latency
from bench.scenarios.memory import memory
from bench.scenarios.reports import reports_scenario
from bench.scenarios.simulation import simulation
from bench.scenarios.spec import QUICK, BenchFailure, Progress, Sizes
from bench.scenarios.stack import compile_bytecode, open_stack
from bench.scenarios.sweep import sweep_scenario
from bench.scenarios.throughput import throughput

SCENARIOS = (
    "throughput",
    "latency",
    "memory",
    "simulation",
    "compile",
    "reports",
    "delivery",
    "book",
    "health",
    "sweep",
    "ingest",
    "burst",
)
# What runs without --only: the book simulation, the health recompute of 10,000 customers and
# the sweep are long, and run on their own;
# so do ingest and burst (issue 20), which have their own sections in RESULTS.md.
DEFAULT_SCENARIOS = SCENARIOS[:7]


async def run_scenarios(
    sizes: Sizes,
    scenarios: Sequence[str],
    progress: Progress,
    on_metrics: Callable[[list[Metric]], None],
    on_failure: Callable[[str, BaseException], None],
) -> None:
    """Run the chosen scenarios; a failing scenario is reported and the others still run."""

    async def guarded(name: str, run: Callable[[], Awaitable[list[Metric]]]) -> None:
        try:
            on_metrics(await run())
        except BenchFailure as exc:
            on_failure(name, exc)

    if sizes.bytecode:
        compile_bytecode()
    temporal = [s for s in ("throughput", "latency", "memory", "ingest", "burst") if s in scenarios]
    if temporal:
        async with open_stack(sizes.temporal_db, sizes.bytecode, sizes.store_database) as stack:
            for name in temporal:
                scenario = {
                    "throughput": throughput,
                    "latency": latency,
                    "memory": memory,
                    "ingest": ingest,
                    "burst": burst,
                }[name]
                await guarded(name, functools.partial(scenario, stack, sizes, progress))
    if "simulation" in scenarios:
        await guarded("simulation", lambda: simulation(sizes, progress))
    if "book" in scenarios:
        await guarded("book", lambda: book(sizes, progress))
    if "sweep" in scenarios:
        await guarded("sweep", lambda: sweep_scenario(sizes, progress))
    if "compile" in scenarios:

        async def compiled() -> list[Metric]:
            return compile_scenario(sizes, progress)

        await guarded("compile", compiled)
    if "reports" in scenarios:

        async def reported() -> list[Metric]:
            return reports_scenario(sizes, progress)

        await guarded("reports", reported)
    if "delivery" in scenarios:
        await guarded("delivery", lambda: delivery(sizes, progress))
    if "health" in scenarios:
        await guarded("health", lambda: health_scenario(sizes, progress))


__all__ = ["DEFAULT_SCENARIOS", "QUICK", "SCENARIOS", "BenchFailure", "Sizes", "run_scenarios"]
