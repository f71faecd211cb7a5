"""A synthetic book for the year-in-the-life test, the benchmark and the shipped example.

`sample_book(n, days)` builds ``n`` customers across segments, time zones and CSMs, with
renewal dates spread over the run, some imported mid-way, and the events of a year of
product usage: new customers' ``customer.created``, onboarding milestones, renewals (the
``contract.renewed`` event, then the CRM moving ``renewal_date`` a year on), renewal
dates moved without a renewal, unsubscribes and churn. The same ``seed`` gives the same
book, so figures can be compared between runs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, time, timedelta

from engine.simulation.book_inputs import Book, BookCustomer, BookEvent
from engine.simulation.inputs import SimContact, SimTeamMember

ZONES = (
    "America/Los_Angeles",
    "America/New_York",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
)
SEGMENTS = ("enterprise", "mid_market", "mid_market", "smb", "smb", "smb", "internal")
TEAM = (
    SimTeamMember(email="dana.whitfield@acme.example", name="Dana Whitfield", roles=["manager"]),
    SimTeamMember(
        email="kenji.watanabe@acme.example",
        name="Kenji Watanabe",
        manager="dana.whitfield@acme.example",
        roles=["manager", "csm"],
    ),
    SimTeamMember(
        email="aiko.tanaka@acme.example",
        name="Aiko Tanaka",
        manager="kenji.watanabe@acme.example",
        roles=["csm"],
    ),
    SimTeamMember(
        email="marcus.bell@acme.example",
        name="Marcus Bell",
        manager="dana.whitfield@acme.example",
        roles=["csm"],
    ),
    SimTeamMember(
        email="lena.fischer@acme.example",
        name="Lena Fischer",
        manager="dana.whitfield@acme.example",
        roles=["csm"],
    ),
    SimTeamMember(
        email="oliver.hughes@acme.example",
        name="Oliver Hughes",
        manager="kenji.watanabe@acme.example",
        roles=["csm"],
    ),
)
CSMS = tuple(m.email for m in TEAM if "csm" in m.roles)
MILESTONE_EVENTS = ("integration.connected", "report.created", "dashboard.shared", "alert.created")


@dataclass(frozen=True)
class SampleBook:
    """A book and its events, with what the generator decided (for a test to check)."""

    book: Book
    events: list[BookEvent]
    renewed: dict[str, int]  # customer -> day of its contract.renewed
    unsubscribed: dict[str, tuple[str, int]]  # customer -> (contact, day)
    churned: dict[str, int]  # customer -> day of customer.churned, inside its renewal cycle
    moved: dict[str, tuple[int, date]]  # customer -> (day, new renewal date), no renewal


def sample_book(
    n: int = 100, days: int = 400, start: date | None = None, seed: int = 7
) -> SampleBook:
    """``n`` customers and their events over ``days`` from ``start`` (day 0)."""
    rng = random.Random(seed)
    start = start or date(2026, 12, 1)
    customers: list[BookCustomer] = []
    events: list[BookEvent] = []
    renewed: dict[str, int] = {}
    unsubscribed: dict[str, tuple[str, int]] = {}
    churned: dict[str, int] = {}
    moved: dict[str, tuple[int, date]] = {}
    for i in range(n):
        cid = f"cust-{i:03d}"
        segment = SEGMENTS[i % len(SEGMENTS)]
        # Renewals spread over the run: some before their 120-day trigger, some inside it.
        renewal_day = 20 + (i * (days - 10)) // n
        added_day = 30 + rng.randrange(150) if i % 9 == 4 else 0
        if added_day and renewal_day <= added_day + 20:
            renewal_day = added_day + 20 + rng.randrange(60)
        renewal = start + timedelta(days=renewal_day)
        contacts = [
            SimContact(email=f"admin@{cid}.example", first_name="Ada", role="admin"),
            SimContact(email=f"sponsor@{cid}.example", first_name="Sam", role="sponsor"),
            SimContact(email=f"champion@{cid}.example", first_name="Cleo", role="champion"),
        ]
        customers.append(
            BookCustomer(
                id=cid,
                name=f"Customer {i:03d}",
                segment=segment,
                timezone=ZONES[i % len(ZONES)],
                owner=CSMS[i % len(CSMS)],
                renewal_date=renewal,
                health_score=[35, 62, 80, 91, None][i % 5],
                attributes={"plan": segment, "seats": 10 + i},
                contacts=contacts,
                added_day=added_day,
            )
        )
        if added_day:
            events.append(
                BookEvent(customer=cid, day=added_day, name="customer.created", properties={})
            )
            for k, name in enumerate(MILESTONE_EVENTS[: 1 + i % 4]):
                events.append(BookEvent(customer=cid, day=added_day + 3 + 4 * k, name=name))
        # Product usage, rolled up monthly (each is signalled to the running enrollments).
        for day in range(max(added_day, rng.randrange(30)), days, 30):
            events.append(
                BookEvent(
                    customer=cid,
                    day=day,
                    at=time(9 + i % 8, 30),
                    name="usage.monthly",
                    properties={"active_users": 2 + (i + day) % 9},
                )
            )
        if i % 13 == 5 and added_day < renewal_day - 75 < days:
            day = renewal_day - 75  # between the renewal's 90- and 60-day emails
            events.append(BookEvent(customer=cid, day=day, unsubscribe=f"admin@{cid}.example"))
            unsubscribed[cid] = (f"admin@{cid}.example", day)
        if i % 17 == 3 and added_day < renewal_day - 120 and renewal_day - 100 < days:
            day = renewal_day - 100  # inside its renewal cycle, before the 90-day touch
            events.append(BookEvent(customer=cid, day=day, name="customer.churned"))
            churned[cid] = day
            continue
        if i % 11 == 7 and renewal_day - 150 > max(added_day, 0):
            # The renewal date moves 30 days later before the cycle starts.
            day = renewal_day - 150
            new = renewal + timedelta(days=30)
            events.append(
                BookEvent(customer=cid, day=day, update={"renewal_date": new.isoformat()})
            )
            moved[cid] = (day, new)
            renewal_day += 30
            renewal += timedelta(days=30)
        if i % 3 != 2 and renewal_day - 25 < days and renewal_day - 25 > added_day:
            # Renewed 25 days early: the goal event, then the CRM's new renewal date.
            day = renewal_day - 25
            events.append(BookEvent(customer=cid, day=day, name="contract.renewed"))
            events.append(
                BookEvent(
                    customer=cid,
                    day=day,
                    update={"renewal_date": (renewal + timedelta(days=365)).isoformat()},
                )
            )
            renewed[cid] = day
    events.sort(key=lambda e: e.day)
    return SampleBook(
        Book(customers=customers, team=list(TEAM)), events, renewed, unsubscribed, churned, moved
    )
