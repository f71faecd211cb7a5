"""Scenario sweep (issue 20): one date-trigger sweep over a book of 100,000 customers.

A fresh SQLite store gets `Sizes.sweep_customers` customers (bulk-inserted, untimed), with
renewal dates spread over a year, so about one in 365 is due. Each variant sweeps them in a
child process of its own (``python -m bench.scenarios.sweep``), which reports its wall time
and its peak RSS (``ru_maxrss``) before and during the sweep; the enrollments it starts go
to a Temporal dev server with no worker on their queue (starting them is the sweep's work):

- ``window``: ``on_date: customer.renewal_date - days(30)``, which the query narrows to the
  customers whose date is near (`engine.language.calendar.due_field_window`);
- ``every customer``: the same date through an attribute the query cannot narrow, so every
  customer is read, a page at a time, and its trigger evaluated;
- ``whole book (as before)``: the ``window`` trigger over every customer's snapshot read at
  once (`all_customer_snapshots`), as each sweep did before: the reference.

Both must enroll the same customers. Not in the default run: ``python -m bench --only sweep
--sweep-customers 100000``.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from bench.report import Metric
from bench.scenarios.spec import BenchFailure, Progress, Sizes

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
WINDOW = "on_date: customer.renewal_date - days(30)\n  late: skip"
TRIGGERS = {
    "window": WINDOW,
    "every customer": "on_date: customer.renewal_date - days(customer.attributes.lead)\n"
    "  late: skip",
    "whole book (as before)": WINDOW,
}
# The variant that reads the whole book in one go, as every sweep did before issue 20 (the
# book simulation's path still: it reads the book once a day for all its playbooks).
WHOLE = "whole book (as before)"
PLAYBOOK = """\
playbook: {id}
name: {id}
trigger:
  {trigger}
steps:
  - id: done
    end: {{outcome: done}}
"""
# Goals of the paged variants (the reference is held to none): a sweep of the book within a
# minute on 2 cores, and memory that does not grow with the book.
GOAL_SECONDS = 60.0
GOAL_MB = 300.0


def _customers(start: int, count: int, today: date) -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    return [
        {
            "id": f"sweep-{i:07d}",
            "name": f"Customer {i}",
            "timezone": "UTC",
            "renewal_date": today + timedelta(days=i % 365),
            "attributes": {"lead": 30},
            "tags": [],
            "created_at": now,
            "updated_at": now,
        }
        for i in range(start, start + count)
    ]


async def sweep_scenario(sizes: Sizes, progress: Progress) -> list[Metric]:
    """Seed the store, start a dev server, and sweep once per variant in a child process."""
    from bench.scenarios.stack import _start_dev_server
    from engine.store.db import dispose_engines, migrate, session_factory
    from engine.store.models import Customer

    tmp = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    env = None
    try:
        url = f"sqlite:///{tmp / 'store.db'}"
        migrate(url)
        today = datetime.now(UTC).date()
        report = progress.phase(f"sweep: seeding {sizes.sweep_customers} customers", 1)
        with session_factory(url).begin() as session:
            for start in range(0, sizes.sweep_customers, 10_000):
                count = min(10_000, sizes.sweep_customers - start)
                session.execute(insert(Customer), _customers(start, count, today))
        report(1)
        dispose_engines()
        env = await _start_dev_server(tmp, "memory")
        address = env.client.service_client.config.target_host
        metrics: list[Metric] = []
        enrolled: dict[str, int] = {}
        for n, variant in enumerate(TRIGGERS):
            report = progress.phase(f"sweep: {variant}", 1)
            run = await _child(url, address, variant, f"sweep-{n}", tmp)
            report(1)
            enrolled[variant] = run["enrolled"]
            rss_mb = run["peak_rss_kb"] / 1024
            base_mb = run["base_rss_kb"] / 1024
            size = f"{sizes.sweep_customers} customers, {variant}"
            read = "the book at once" if variant == WHOLE else f"{run['pages']} pages"
            note = f"{run['enrolled']} enrolled, {read} read"
            metrics += [
                Metric(
                    "sweep",
                    f"{size}: time",
                    "s",
                    run["seconds"],
                    goal="" if variant == WHOLE else f"< {GOAL_SECONDS:.0f} s",
                    met=None if variant == WHOLE else run["seconds"] < GOAL_SECONDS,
                    note=note,
                ),
                Metric(
                    "sweep",
                    f"{size}: peak RSS",
                    "MB",
                    rss_mb,
                    goal="" if variant == WHOLE else f"< {GOAL_MB:.0f} MB",
                    met=None if variant == WHOLE else rss_mb < GOAL_MB,
                    note=f"{base_mb:.0f} MB before the sweep (imports and plan)",
                ),
            ]
        expected = sum(1 for i in range(sizes.sweep_customers) if i % 365 == 30)
        if set(enrolled.values()) != {expected}:
            raise BenchFailure(f"sweep: enrolled {enrolled}, expected {expected} each")
        return metrics
    finally:
        if env is not None:
            await env.shutdown()
        dispose_engines()
        shutil.rmtree(tmp, ignore_errors=True)


async def _child(url: str, address: str, variant: str, playbook: str, tmp: Path) -> dict[str, Any]:
    """Run one variant's sweep in ``python -m bench.scenarios.sweep``; its JSON result."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.scenarios.sweep",
        url,
        address,
        variant,
        playbook,
        str(tmp / playbook),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise BenchFailure(f"sweep ({variant}) failed: {err.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def _run_child(url: str, address: str, variant: str, playbook: str, root: Path) -> None:
    """The child: compile the variant's playbook, connect, sweep, print the figures."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    from engine.client.sweeps import sweep
    from engine.project import load_project
    from engine.store.context import all_customer_snapshots
    from engine.store.db import session_factory

    root.mkdir(parents=True)
    shutil.copy(PLAYBOOKS / "milestones.yaml", root / "milestones.yaml")
    (root / f"{playbook}.yaml").write_text(PLAYBOOK.format(id=playbook, trigger=TRIGGERS[variant]))
    project = load_project(root)
    if project.errors:
        raise SystemExit(f"bench playbook does not compile: {project.errors}")
    plan = project.plan(playbook)
    client = await Client.connect(address, data_converter=pydantic_data_converter)
    sessions = session_factory(url)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pages: list[str] = []
    began = time.perf_counter()
    book = None
    if variant == WHOLE:
        with sessions() as session:
            book = all_customer_snapshots(session)
    started = await sweep(
        sessions,
        client,
        plan,
        "bench-sweep",
        datetime.now(UTC),
        False,
        customers=book,
        on_page=pages.append,
    )
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "enrolled": len(started),
                "pages": len(pages),
                "base_rss_kb": base,
                "peak_rss_kb": peak,
            }
        )
    )


if __name__ == "__main__":
    url, address, variant, playbook, root = sys.argv[1:6]
    asyncio.run(_run_child(url, address, variant, playbook, Path(root)))
