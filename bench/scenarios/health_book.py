"""A made-up book for the health scenario: customers with a year of measured events.

Every customer gets the fields the shipped scorecard (``playbooks/health.yaml``) reads
(open tickets, NPS, seats) and a year of the events it measures: a weekly
``weekly_active_users`` metric, ``report.created`` by a few users and, over the last 60
days, ``session.started`` (read only for the share of active users). Everything is
bulk-inserted in chunks, never through the API: seeding is not what is timed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session, sessionmaker

from engine.store.models import Customer, Event

SEGMENTS = ("smb", "mid_market", "enterprise")
CHUNK = 20_000


def customer_rows(prefix: str, count: int, now: datetime) -> list[dict[str, Any]]:
    """``count`` customers with the fields the scorecard measures (one in ten has none)."""
    rng = random.Random(count)
    rows = []
    for i in range(count):
        seats = rng.randint(5, 200)
        attributes: dict[str, Any] = (
            {}
            if i % 10 == 0
            else {
                "open_tickets": rng.randint(0, 9),
                "nps": rng.randint(-100, 100),
                "seats": seats,
                "seats_used": rng.randint(0, seats),
            }
        )
        rows.append(
            {
                "id": f"{prefix}-{i:06d}",
                "name": f"Customer {i}",
                "segment": SEGMENTS[i % 3],
                "timezone": "UTC",
                "attributes": attributes,
                "tags": [],
                "created_at": now - timedelta(days=400),
                "updated_at": now - timedelta(days=400),
            }
        )
    return rows


def event_rows(customer_ids: list[str], now: datetime, days: int) -> Iterator[dict[str, Any]]:
    """``days`` of events per customer, ending just before ``now``: two a week, and a
    weekly ``session.started`` over the last 60 days."""
    rng = random.Random(days)
    start = now - timedelta(days=days)
    for n, cid in enumerate(customer_ids):
        users = [f"u{k}" for k in range(rng.randint(1, 8))]
        quiet = n % 7 == 0  # a share of the book stops using the product a month ago
        for day in range(0, days, 7):
            at = start + timedelta(days=day, hours=rng.randint(0, 23))
            if quiet and at > now - timedelta(days=30):
                break
            value = rng.randint(0, 15)
            yield _event(cid, "weekly_active_users", at, {"value": value})
            yield _event(
                cid, "report.created", at + timedelta(hours=1), {"user": rng.choice(users)}
            )
            later = at + timedelta(days=rng.randint(1, 5))
            if now - timedelta(days=60) < later < now:  # read only for the last 30 days
                yield _event(cid, "session.started", later, {"user": rng.choice(users)})


def _event(cid: str, name: str, at: datetime, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"{cid}/{name}/{at:%Y%m%d%H%M%S}",
        "customer_id": cid,
        "name": name,
        "at": at,
        "properties": properties,
        "received_at": at,
        "status": "received",
    }


def seed_book(
    sessions: sessionmaker[Session], prefix: str, customers: int, days: int, now: datetime
) -> tuple[list[str], int]:
    """Insert the customers and their events; (customer ids, events inserted)."""
    rows = customer_rows(prefix, customers, now)
    ids = [row["id"] for row in rows]
    with sessions.begin() as session:
        session.execute(insert(Customer), rows)
    inserted = 0
    chunk: list[dict[str, Any]] = []
    seen: set[str] = set()
    for row in event_rows(ids, now, days):
        if row["id"] in seen:  # two events of a name in the same second: keep one
            continue
        seen.add(row["id"])
        chunk.append(row)
        if len(chunk) >= CHUNK:
            inserted += _insert(sessions, chunk)
            chunk = []
    inserted += _insert(sessions, chunk)
    return ids, inserted


def _insert(sessions: sessionmaker[Session], rows: list[dict[str, Any]]) -> int:
    if rows:
        with sessions.begin() as session:
            session.execute(insert(cast(Table, Event.__table__)), rows)  # Core: less CPU
    return len(rows)
