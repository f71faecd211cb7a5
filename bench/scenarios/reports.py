"""Scenario 6, reports: each report page's server time over 10,000 customers and a year.

A fresh SQLite store gets `Sizes.report_customers` customers and a year of made-up history
(`engine.demo_history`: enrollments and their steps, emails with engagement and variants,
tasks, milestones). Then each report is built and its page rendered (the charts and the
HTML template, as `/reports/<kind>` does), unfiltered and filtered to one playbook; the
figure is the median of `Sizes.compile_runs` runs, held to the issue's 500 ms.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.report import Metric
from bench.scenarios.spec import Progress, Sizes
from engine.demo_history import seed_history
from engine.project import load_project
from engine.services import reports
from engine.services.reports import KINDS, TITLES, ReportFilters
from engine.store.db import dispose_engines, migrate, session_factory
from engine.store.models import Customer
from engine.web.charts import render_chart
from engine.web.rendering import _templates

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
GOAL_MS = 500.0


def _customers(count: int, now: datetime) -> list[dict[str, Any]]:
    segments = ("smb", "mid_market", "enterprise")
    return [
        {"id": f"bench-{i:06d}", "name": f"Customer {i}", "segment": segments[i % 3],
         "timezone": "UTC", "owner_email": f"csm{i % 12}@cs.example",
         "health_score": None if i % 10 == 0 else (i * 37) % 101,
         "renewal_date": (now + timedelta(days=i % 365)).date(), "attributes": {}, "tags": [],
         "created_at": now, "updated_at": now}
        for i in range(count)
    ]  # fmt: skip


def page_ms(session: Any, kind: str, filters: ReportFilters, now: datetime) -> float:
    """Build one report and render its page as the web UI does; milliseconds."""
    started = time.perf_counter()
    report = reports.build(session, kind, filters, now)
    charts = {t.key: render_chart(t, t.chart) for t in report.tables if t.chart and t.rows}
    _templates().get_template("reports.html").render(
        request=None, viewer=None, now=now, path=f"/reports/{kind}", flash=None, report=report,
        kinds=[(k, TITLES[k]) for k in KINDS], charts=charts, filters=filters,
        query="", segments=[], playbooks=[],
    )  # fmt: skip
    return (time.perf_counter() - started) * 1000


def reports_scenario(sizes: Sizes, progress: Progress) -> list[Metric]:
    now = datetime.now(UTC)
    project = load_project(PLAYBOOKS)
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as folder:
        url = f"sqlite:///{folder}/store.db"
        migrate(url)
        sessions = session_factory(url)
        seeding = time.perf_counter()
        with sessions.begin() as session:
            session.execute(insert(Customer), _customers(sizes.report_customers, now))
            enrollments = seed_history(session, project.plans.values(), now)
        seeded = time.perf_counter() - seeding
        first = sorted(p for p in project.plans if project.plans[p].steps)[0]
        metrics: list[Metric] = []
        for kind in KINDS:
            for label, filters in (
                ("all", ReportFilters()),
                (first, ReportFilters(playbook=first)),
            ):
                if kind == "portfolio" and label != "all":
                    continue
                with sessions() as session:
                    page_ms(session, kind, filters, now)  # warm the caches once
                    runs = [page_ms(session, kind, filters, now) for _ in range(sizes.compile_runs)]
                median = statistics.median(runs)
                metrics.append(
                    Metric(
                        "reports", f"/reports/{kind} ({label}), {sizes.report_customers:,} "
                        f"customers, {enrollments:,} enrollments over a year", "ms", median,
                        goal=f"< {GOAL_MS:.0f} ms", met=median < GOAL_MS,
                        note=f"seeded in {seeded:.0f} s",
                    )
                )  # fmt: skip
        dispose_engines()
    return metrics
