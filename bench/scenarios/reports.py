"""Scenario 6, reports: each report page's server time over 10,000 customers and a year.

A store (a fresh SQLite file, or the database `Sizes.report_database` names, such as a
PostgreSQL URL) gets `Sizes.report_customers` customers and a year of made-up history
(`engine.demo_history`: enrollments and their steps, emails with engagement and variants,
tasks, milestones); a database that already holds them is reused, not seeded again. Then
each report page is built as `/reports/<kind>` builds it (the report, the filter form's
choices, the charts and the HTML template), unfiltered and filtered to one playbook.

Two figures per page, the medians of `Sizes.compile_runs` requests after one warm-up: the
wall time, and the server's CPU time (this process's, plus on PostgreSQL that of the
database backend serving the session, read from /proc). The machine is shared, so the wall
time moves with the load (given beside it); the CPU time is what the server spends on the
page whatever else runs, and is what is held to the issue's 500 ms.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from bench.report import Metric
from bench.scenarios.spec import Progress, Sizes
from engine.demo_history import seed_history
from engine.project import load_project
from engine.services import reports
from engine.services.reports import KINDS, TITLES, ReportFilters
from engine.store.db import dispose_engines, engine_for, migrate, session_factory
from engine.store.models import Customer, Enrollment
from engine.web.charts import render_chart
from engine.web.pages.reports import _choices
from engine.web.rendering import _templates

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
GOAL_MS = 500.0
PREFIX = "bench-"


def _customers(count: int, now: datetime) -> list[dict[str, Any]]:
    segments = ("smb", "mid_market", "enterprise")
    return [
        {"id": f"{PREFIX}{i:06d}", "name": f"Customer {i}", "segment": segments[i % 3],
         "timezone": "UTC", "owner_email": f"csm{i % 12}@cs.example",
         "health_score": None if i % 10 == 0 else (i * 37) % 101,
         "renewal_date": (now + timedelta(days=i % 365)).date(), "attributes": {}, "tags": [],
         "created_at": now, "updated_at": now}
        for i in range(count)
    ]  # fmt: skip


def server_cpu(session: Session) -> Callable[[], float]:
    """A clock of the CPU seconds the server spends for ``session``: this process's, plus
    (PostgreSQL) its database backend's, whose queries run in another process."""
    if session.get_bind().dialect.name != "postgresql":
        return time.process_time
    pid = session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    ticks = os.sysconf("SC_CLK_TCK")
    stat = Path(f"/proc/{pid}/stat")

    def clock() -> float:
        # Fields 14 and 15 (after the parenthesised name): user and system time, in ticks.
        fields = stat.read_text().rsplit(")", 1)[1].split()
        return time.process_time() + (int(fields[11]) + int(fields[12])) / ticks

    return clock


def page(session: Session, kind: str, filters: ReportFilters, now: datetime) -> str:
    """One report page as the web UI makes it: the report, the filter form's choices, the
    charts and the template."""
    report = reports.build(session, kind, filters, now)
    segments, playbooks = _choices(session)
    charts = {t.key: render_chart(t, t.chart) for t in report.tables if t.chart and t.rows}
    return _templates().get_template("reports.html").render(
        request=None, viewer=None, now=now, path=f"/reports/{kind}", flash=None, report=report,
        kinds=[(k, TITLES[k]) for k in KINDS], charts=charts, filters=filters,
        query="", segments=segments, playbooks=playbooks,
    )  # fmt: skip


def page_ms(
    session: Session, kind: str, filters: ReportFilters, now: datetime
) -> tuple[float, float]:
    """One page's (wall, server CPU) milliseconds."""
    clock = server_cpu(session)
    started, cpu = time.perf_counter(), clock()
    page(session, kind, filters, now)
    return (time.perf_counter() - started) * 1000, (clock() - cpu) * 1000


@contextmanager
def _store(sizes: Sizes) -> Iterator[str]:
    if sizes.report_database:
        yield sizes.report_database
        return
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as folder:
        yield f"sqlite:///{folder}/store.db"


def _seed(url: str, sizes: Sizes, now: datetime) -> tuple[int, float | None]:
    """Customers and a year of history, unless the store holds them already: (enrollments,
    seconds seeding or None)."""
    migrate(url)
    sessions = session_factory(url)
    with sessions() as session:
        held = session.scalar(
            select(func.count()).select_from(Customer).where(Customer.id.startswith(PREFIX))
        )
    if held == sizes.report_customers:
        with sessions() as session:
            enrolled = session.scalar(select(func.count()).select_from(Enrollment))
            return int(enrolled or 0), None
    if held:
        raise ValueError(f"{url} holds {held} bench customers, not {sizes.report_customers}")
    started = time.perf_counter()
    with sessions.begin() as session:
        session.execute(insert(Customer), _customers(sizes.report_customers, now))
        enrollments = seed_history(session, load_project(PLAYBOOKS).plans.values(), now)
    return enrollments, time.perf_counter() - started


def reports_scenario(sizes: Sizes, progress: Progress) -> list[Metric]:
    now = datetime.now(UTC)
    project = load_project(PLAYBOOKS)
    first = sorted(p for p in project.plans if project.plans[p].steps)[0]
    pages = [
        (kind, label, filters)
        for kind in KINDS
        for label, filters in (("all", ReportFilters()), (first, ReportFilters(playbook=first)))
        if kind != "portfolio" or label == "all"
    ]
    metrics: list[Metric] = []
    with _store(sizes) as url:
        enrollments, seeded = _seed(url, sizes, now)
        backend = engine_for(url).dialect.name
        data = f"{sizes.report_customers:,} customers, {enrollments:,} enrollments, {backend}"
        seeding = "reused" if seeded is None else f"seeded in {seeded:.0f} s"
        step = progress.phase("reports", len(pages))
        for done, (kind, label, filters) in enumerate(pages, 1):
            with session_factory(url)() as session:
                page_ms(session, kind, filters, now)  # warm the caches once
                load = os.getloadavg()[0]
                runs = [page_ms(session, kind, filters, now) for _ in range(sizes.compile_runs)]
                load = max(load, os.getloadavg()[0])
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            name = f"/reports/{kind} ({label}), {data}"
            metrics += [
                Metric(
                    "reports", f"{name}: server CPU", "ms", cpu, goal=f"< {GOAL_MS:.0f} ms",
                    met=cpu < GOAL_MS, note=seeding,
                ),
                Metric(
                    "reports", f"{name}: wall", "ms", wall, goal=f"< {GOAL_MS:.0f} ms",
                    met=wall < GOAL_MS, note=f"load average up to {load:.1f}",
                ),
            ]  # fmt: skip
            step(done)
        dispose_engines()
    return metrics
