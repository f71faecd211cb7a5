"""Demo data for `playbook up --demo`: a team, customers around the world, a usage stream.

The example customers of the project (``playbooks/examples/``) plus generated ones, spread
over segments, time zones, health scores and renewal dates, so within seconds the outbox,
the inbox and the enrollment pages show real activity.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from engine.api.auth import hash_password
from engine.client.sweeps import sweep
from engine.scopes import Scope
from engine.services import Services, tokens
from engine.simulation import load_customer, load_team
from engine.store import repository
from engine.store.models import TeamMember

PASSWORD = "playbook-demo"
ADMIN = "admin@demo.example"
DEMO_TOKEN = "demo"
DEMO_TOKEN_SCOPES = (Scope.INGEST, Scope.OPERATE)
COMPANIES = [
    ("northwind", "Northwind Traders", "mid_market", "America/Chicago", 71),
    ("globex", "Globex Corporation", "enterprise", "America/Los_Angeles", 44),
    ("initech", "Initech", "smb", "America/New_York", 83),
    ("umbrella", "Umbrella Analytics", "enterprise", "Europe/London", 58),
    ("soylent", "Soylent Foods", "smb", "Australia/Sydney", 91),
    ("tyrell", "Tyrell Systems", "mid_market", "Asia/Kolkata", 36),
    ("wayne", "Wayne Logistics", "enterprise", "America/Sao_Paulo", 77),
    ("stark", "Stark Energy", "mid_market", "Europe/Berlin", 65),
]
USAGE = [
    "integration.connected",
    "user.invited",
    "report.created",
    "dashboard.shared",
    "alert.created",
    "weekly_active_users",
]


@dataclass
class DemoCredentials:
    """What `playbook up --demo` tells its user; ``api_token`` only when it was just created
    (a later start finds the token and cannot show it again: only its hash is stored)."""

    customers: int
    admin_email: str
    password: str
    api_token: str | None


async def seed_demo(services: Services, root: Path) -> DemoCredentials:
    """Seed the team, customers and contacts; announce each customer with an event."""
    rng = random.Random(7)
    team_file = root / "examples" / "team.yaml"
    team = load_team(team_file) if team_file.is_file() else []
    owners = [m.email for m in team if "csm" in m.roles] or [ADMIN]
    today = datetime.now(UTC).date()
    with services.sessions.begin() as session:
        for member in team:
            row = session.get(TeamMember, member.email.lower()) or TeamMember(
                email=member.email.lower()
            )
            row.name, row.roles = member.name, member.roles
            row.manager_email = member.manager.lower() if member.manager else None
            row.password_hash = row.password_hash or hash_password(PASSWORD)
            session.add(row)
        admin = session.get(TeamMember, ADMIN) or TeamMember(email=ADMIN, name="Demo Admin")
        admin.is_admin, admin.roles = True, ["admin"]
        admin.password_hash = admin.password_hash or hash_password(PASSWORD)
        session.add(admin)
        # One demo token, created on the first start; not a new secret in the log every time.
        issued = tokens.ensure(session, DEMO_TOKEN, DEMO_TOKEN_SCOPES, created_by="demo")
        token = issued.secret if issued else None
        customers = []
        for path in sorted((root / "examples").glob("*.y*ml")):
            if path.name == "team.yaml":
                continue
            c = load_customer(path)
            customers.append(c.id)
            repository.upsert_customer(session, c.customer_data())
            for contact in c.contacts:
                if contact.unsubscribed:
                    repository.suppress(
                        session, contact.email, "unsubscribed (example file)", source="demo"
                    )
        for index, (cid, name, segment, tz, health) in enumerate(COMPANIES):
            domain = f"{cid}.example"
            # Half renew exactly 120 days from now, so the renewal sweep enrolls them today.
            renewal = today + timedelta(days=120 if index % 2 == 0 else 200 + 30 * index)
            customers.append(cid)
            repository.upsert_customer(
                session,
                repository.CustomerData(
                    id=cid,
                    name=name,
                    segment=segment,
                    timezone=tz,
                    owner_email=owners[index % len(owners)],
                    renewal_date=renewal,
                    health_score=health,
                    attributes={"plan": segment, "seats": 20 + 15 * index},
                    contacts=[
                        repository.ContactData(
                            email=f"ops@{domain}",
                            first_name=rng.choice(["Alex", "Sam", "Jordan", "Riley", "Taylor"]),
                            last_name="Lee",
                            role="admin",
                        ),
                        repository.ContactData(
                            email=f"champion@{domain}",
                            first_name=rng.choice(["Priya", "Mateo", "Hana", "Noah", "Zoe"]),
                            last_name="Khan",
                            role="champion",
                        ),
                        repository.ContactData(
                            email=f"vp@{domain}",
                            first_name="Morgan",
                            last_name="Reyes",
                            role="sponsor",
                        ),
                    ],
                ),
            )
    router = services.router
    for cid in customers:
        await router.handle(
            f"demo-created-{cid}-{today.isoformat()}",
            cid,
            "customer.created",
            datetime.now(UTC),
            {"source": "demo"},
        )
    for plan in services.deployed.plans().values():
        if plan.trigger and plan.trigger.kind in ("date", "schedule"):
            await sweep(
                services.sessions,
                services.client,
                plan,
                services.settings.temporal_task_queue,
                datetime.now(UTC),
            )
    return DemoCredentials(len(customers), ADMIN, PASSWORD, token)


async def run_demo(services: Services, stop: asyncio.Event, every: float = 3.0) -> None:
    """Post a plausible usage event for a random customer every few seconds."""
    rng = random.Random(11)
    customers = [c[0] for c in COMPANIES]
    while not stop.is_set():
        await asyncio.sleep(every)
        customer = rng.choice(customers)
        name = rng.choice(USAGE)
        properties = {"value": rng.randint(1, 9)} if name == "weekly_active_users" else {}
        try:
            await services.router.handle(
                uuid.uuid4().hex, customer, name, datetime.now(UTC), properties
            )
        except Exception:
            continue


__all__ = ["DemoCredentials", "date", "run_demo", "seed_demo"]
