"""Scenario health (issue 15): what health scoring costs per event, and the daily recompute.

- **per event**: the real HTTP app (``POST /api/events``) on a SQLite store whose customers
  have a year of events, twice: once with the shipped scorecard (``playbooks/health.yaml``),
  so each measured event stores, reads the customer's window of events, scores and records
  today's point, and once with no scorecard (store and route only). Blocks of events go to
  each app in turn, the order flipped every round, and the figures are the wall time and
  the harness process's CPU time per event; their ratio is the cost of scoring.
- **daily recompute**: `engine.store.health.recompute_book` (what the daily Schedule's
  activity runs) over ``Sizes.health_customers`` customers with ``Sizes.health_days`` days
  of events, bulk-inserted first (not timed): the first recompute (every customer scored
  for the first time) and the next day's. On SQLite always; on PostgreSQL when
  ``--database-url`` (or ``DATABASE_URL_POSTGRES``, as tests use) names a server, in a
  throwaway database created there and dropped afterwards. Goal: under 30 s on 2 cores.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import func, select

from bench.report import Metric
from bench.scenarios.databases import fresh_database
from bench.scenarios.health_book import seed_book
from bench.scenarios.spec import SHIPPED, BenchFailure, Progress, Sizes
from bench.scenarios.stack import BENCH_PLAYBOOKS, _start_dev_server
from engine.api.app import create_app
from engine.api.auth import create_api_token
from engine.language.health import Scorecard
from engine.project import load_project
from engine.services import Services
from engine.settings import load_settings
from engine.store import health
from engine.store.db import dispose_engines, migrate, session_factory
from engine.store.models import HealthScore

GOAL_SECONDS = 30.0
POSTGRES_ENV = "DATABASE_URL_POSTGRES"
SCORED, PLAIN = "scorecard", "none"
EVENT_CUSTOMERS = 200  # the per-event part's book: customers with a year of events
BLOCK = 25  # events per block; the variants alternate block by block


async def health_scenario(sizes: Sizes, progress: Progress) -> list[Metric]:
    card = load_project(SHIPPED).scorecard
    if card is None:
        raise BenchFailure("health: playbooks/health.yaml did not load")
    metrics = await _per_event(sizes, card, progress)
    metrics += _recompute(sizes, card, "SQLite", None, progress)
    server = sizes.database_url or os.environ.get(POSTGRES_ENV)
    if server:
        metrics += _recompute(sizes, card, "PostgreSQL", server, progress)
    else:
        metrics.append(
            Metric(
                "health",
                "daily recompute on PostgreSQL",
                "s",
                None,
                note=f"not run: no --database-url (or {POSTGRES_ENV}) naming a server",
            )
        )
    return metrics


# -- per event -------------------------------------------------------------------------------


async def _per_event(sizes: Sizes, card: Scorecard, progress: Progress) -> list[Metric]:
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-health-") as folder:
        tmp = Path(folder)
        url = f"sqlite:///{tmp / 'store.db'}"
        migrate(url)
        sessions = session_factory(url)
        with sessions.begin() as session:
            token = create_api_token(session, "bench", ["ingest"])
        ids, _ = seed_book(sessions, "e", EVENT_CUSTOMERS, sizes.health_days, now)
        project = load_project(BENCH_PLAYBOOKS)
        env = await _start_dev_server(tmp, "memory")
        try:
            address = env.client.service_client.config.target_host
            settings = load_settings(playbook_home=tmp, database_url=url, temporal_address=address)
            apps = {
                variant: create_app(Services(settings, sessions, env.client, scored))
                for variant, scored in (
                    (SCORED, dataclasses.replace(project, scorecard=card)),
                    (PLAIN, dataclasses.replace(project, scorecard=None)),
                )
            }
            for app in apps.values():  # FastAPI builds its routes on the first requests
                await _post_block(app, token, ids[-BLOCK:])
            wall = {SCORED: 0.0, PLAIN: 0.0}
            cpu = {SCORED: 0.0, PLAIN: 0.0}
            posted = {SCORED: 0, PLAIN: 0}
            blocks = max(1, sizes.health_events // BLOCK)
            report = progress.phase("health: events posted, with and without a scorecard", blocks)
            for block in range(blocks):
                order = (SCORED, PLAIN) if block % 2 == 0 else (PLAIN, SCORED)
                for variant in order:
                    customers = [ids[(block * BLOCK + n) % len(ids)] for n in range(BLOCK)]
                    took, used = await _post_block(apps[variant], token, customers)
                    wall[variant] += took
                    cpu[variant] += used
                    posted[variant] += BLOCK
                report(block + 1)
        finally:
            await env.shutdown()
        with sessions() as session:
            points = session.scalar(select(func.count()).select_from(HealthScore))
        dispose_engines()
    if not points:
        raise BenchFailure("health: the scored events recorded no health point")
    load = _load()
    per = {v: (wall[v] / posted[v] * 1000, cpu[v] / posted[v] * 1000) for v in wall}
    note = (
        f"{posted[SCORED]} report.created events each, {EVENT_CUSTOMERS} customers with "
        f"{sizes.health_days} days of events; engine = shipped scorecard, baseline = none; "
        f"load {load}"
    )
    return [
        Metric("health", "POST /api/events wall per event", "ms", per[SCORED][0],
               per[PLAIN][0], note=note),
        Metric("health", "POST /api/events CPU per event (harness process)", "ms",
               per[SCORED][1], per[PLAIN][1]),
    ]  # fmt: skip


async def _post_block(app: object, token: str, customers: list[str]) -> tuple[float, float]:
    """POST one measured event per customer, one after another; (wall s, CPU s)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        base_url="http://bench.invalid",
    ) as http:
        wall, cpu = time.perf_counter(), time.process_time()
        for customer in customers:
            body = {
                "id": uuid.uuid4().hex,
                "customer_id": customer,
                "name": "report.created",
                "properties": {"user": "u0"},
            }
            response = await http.post("/api/events", json=body, headers=headers)
            status = response.json()["results"][0]["status"] if response.status_code == 202 else ""
            if status != "accepted":
                raise BenchFailure(
                    f"health: POST /api/events: {response.status_code} {response.text}"
                )
        return time.perf_counter() - wall, time.process_time() - cpu


# -- daily recompute -------------------------------------------------------------------------


def _recompute(
    sizes: Sizes, card: Scorecard, backend: str, server: str | None, progress: Progress
) -> list[Metric]:
    now = datetime.now(UTC).replace(hour=5, minute=0, second=0, microsecond=0)
    with fresh_database(server, "health") as url:
        migrate(url)
        sessions = session_factory(url)
        seeding = time.perf_counter()
        ids, events = seed_book(sessions, "c", sizes.health_customers, sizes.health_days, now)
        seeded = time.perf_counter() - seeding
        metrics = []
        for label, day in (("first", now), ("next day's", now + timedelta(days=1))):
            report = progress.phase(f"health: {label} recompute on {backend}", len(ids))
            wall, cpu = time.perf_counter(), time.process_time()
            done = changed = moved = 0
            for page in health.recompute_book(sessions, card, day):
                done += len(page)
                changed += sum(r.changed for r in page)
                moved += sum(r.moved for r in page)
                report(done)
            took, used = time.perf_counter() - wall, time.process_time() - cpu
            if done != len(ids):
                raise BenchFailure(f"health: recomputed {done} of {len(ids)} customers")
            with sessions() as session:
                points = session.scalar(
                    select(func.count())
                    .select_from(HealthScore)
                    .where(HealthScore.day == day.date())
                )
            if points != len(ids):
                raise BenchFailure(f"health: {points} points for {len(ids)} customers")
            metrics.append(
                Metric(
                    "health",
                    f"{label} recompute of {len(ids):,} customers on {backend}",
                    "s",
                    took,
                    goal=f"< {GOAL_SECONDS:.0f} s",
                    met=took < GOAL_SECONDS,
                    note=f"{events:,} events over {sizes.health_days} days, seeded in "
                    f"{seeded:.0f} s (not timed); {changed:,} scores moved, {moved:,} customers "
                    f"counting signal changes; CPU {used:.1f} s "
                    f"in this process; load {_load()}",
                )
            )
        dispose_engines()
    return metrics


def _load() -> str:
    return ", ".join(f"{value:.1f}" for value in os.getloadavg())
