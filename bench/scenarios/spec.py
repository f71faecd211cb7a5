"""What every scenario module shares: the variants compared, the sizes, how a run reports
its progress and how it fails."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

ENGINE, ENGINE_SIGNAL, BASELINE = "engine", "engine_signal", "baseline"
BASELINE_API = "baseline_api"
"""The baseline behind its own hand-written event endpoint (`bench.baseline_api`)."""
CODES = {ENGINE: "e", ENGINE_SIGNAL: "s", BASELINE: "b", BASELINE_API: "a"}


def runs_as(variant: str) -> str:
    """The workflow, and so the worker, a variant runs: `ENGINE` or `BASELINE`."""
    return BASELINE if variant in (BASELINE, BASELINE_API) else ENGINE


ROOT = Path(__file__).resolve().parents[2]  # the project checkout
SHIPPED = ROOT / "playbooks"


class BenchFailure(Exception):
    """A run did not do all of its work, or did some of it twice: it gets no figure."""


@dataclass
class Sizes:
    """How big each scenario is; the defaults are the ones in bench/README.md."""

    enrollments: int = 250  # the full size: 1000
    rate: float = 50.0
    events: int = 150
    latency_slice: int = 0  # seconds of one variant's events before the next one's turn
    parked: int = 300  # the full size: 10000
    rounds: int = 2
    sim_runs: int = 5
    book_customers: int = 100
    book_days: int = 365
    compile_steps: int = 1000
    compile_runs: int = 5
    history_sample: int = 25
    replays: int = 3
    stall_timeout: float = 60.0
    temporal_db: str = "memory"
    store_database: str = ""  # the Temporal scenarios' PostgreSQL server; "": SQLite
    bytecode: bool = True
    report_customers: int = 10_000  # the reports scenario (issue 19)
    health_customers: int = 10_000  # the health scenario (issue 15): the daily recompute
    health_days: int = 365
    health_events: int = 500  # per variant, posted through the API
    database_url: str | None = None  # a PostgreSQL server for the health scenario
    ingest_events: int = 50_000  # the ingest scenario (issue 20), in batches of 1,000
    sweep_customers: int = 100_000  # the sweep scenario (issue 20)
    report_database: str = ""  # the reports scenario's store; "": a fresh SQLite file
    ingest_database: str = ""  # the ingest scenario's store; "": the run's store
    ingest_processes: int = 2  # the ingest scenario's API processes (one port, SO_REUSEPORT)
    burst_enrollments: int = 10_000  # the burst scenario (issue 20): started by one sweep
    burst_workers: int = 1  # the burst scenario's worker processes on the task queue
    burst_database: str = ""  # the burst scenario's PostgreSQL server; "": a fresh SQLite file


QUICK = {
    "enrollments": 20,
    "rate": 20.0,
    "events": 20,
    "parked": 30,
    "rounds": 1,
    "sim_runs": 1,
    "book_customers": 10,
    "book_days": 60,
    "compile_steps": 200,
    "compile_runs": 1,
    "history_sample": 5,
    "replays": 1,
    "report_customers": 500,
    "health_customers": 500,
    "health_events": 50,
    "ingest_events": 5_000,
    "sweep_customers": 2_000,
    "burst_enrollments": 20,
}


class Progress(Protocol):
    """What the scenarios tell the user while they run (a rich progress bar in the CLI)."""

    def phase(self, description: str, total: float) -> Callable[[float], None]: ...
