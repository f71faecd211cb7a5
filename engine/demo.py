"""Demo data for `playbook up --demo`: a team, customers around the world, a usage stream.

The example customers of the project (``playbooks/examples/``) plus generated ones, spread
over segments, health scores and renewal dates, so that within five minutes every shipped
playbook runs and every page has something to show:

- onboarding starts for every customer (`customer.created`), and adoption for the older half
  (`customer.onboarded`); renewal for those renewing in 120 days; QBR for the enterprise
  accounts, swept as on the day this quarter's QBRs open if that day is still ahead;
- the generated customers sit in time zones where it is a weekday business hour now (when
  there is one), so the emails held for send windows go out at once;
- their owners rotate over the CSMs of ``team.yaml``, so tasks arrive in several inboxes;
- two accounts fall behind: their health drops step by step (risk on the timeline and the
  renewal triage), and the owner of an at-risk renewal escalates it to their manager.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.api.auth import hash_password
from engine.client.sweeps import sweep
from engine.demo_health import seed_health
from engine.demo_history import PREFIX, seed_history
from engine.errors import ServiceError
from engine.language.calendar import period
from engine.language.plan import CompiledPlan
from engine.scopes import Scope
from engine.services import Services, tasks, tokens
from engine.simulation import load_customer, load_team
from engine.statuses import TaskStatus
from engine.store import repository
from engine.store.models import Customer, Task, TeamMember

log = logging.getLogger(__name__)
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
# Real zones from UTC-10 to UTC+14: at any weekday hour, some are in business hours.
OPEN_ZONES = [
    "Pacific/Honolulu",
    "America/Los_Angeles",
    "America/Denver",
    "America/Chicago",
    "America/New_York",
    "America/Sao_Paulo",
    "Atlantic/Azores",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Athens",
    "Europe/Moscow",
    "Asia/Dubai",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Kiritimati",
]
# Where the demo team works (Monday to Friday, 09:00-17:00 in their zone): due dates and
# escalations count their working days, and each sees times in their own zone.
TEAM_ZONES = {
    "dana.whitfield@acme.example": "America/New_York",
    "kenji.watanabe@acme.example": "Asia/Tokyo",
    "aiko.tanaka@acme.example": "Asia/Tokyo",
    "marcus.bell@acme.example": "America/Chicago",
    "lena.fischer@acme.example": "Europe/Berlin",
    "oliver.hughes@acme.example": "Europe/London",
}
FALLING_BEHIND = ("globex", "tyrell")  # their health drops while the demo runs
HEALTH_FLOOR = 20
USAGE = [
    "integration.connected",
    "user.invited",
    "report.created",
    "dashboard.shared",
    "alert.created",
    "weekly_active_users",
]


def in_business_hours(zone: str, now: datetime) -> bool:
    """Whether ``now`` is a weekday between 09:00 and 16:30 in ``zone`` (inside the shipped
    playbooks' send windows, with time to spare)."""
    local = now.astimezone(ZoneInfo(zone))
    return local.weekday() < 5 and time(9) <= local.time() <= time(16, 30)


def demo_zones(home_zones: list[str], now: datetime) -> list[str]:
    """A zone per company: its own where it is a business hour now, else one of the
    `OPEN_ZONES` that is (in turn), else its own (a weekend everywhere)."""
    open_now = [z for z in OPEN_ZONES if in_business_hours(z, now)]
    zones = []
    for index, zone in enumerate(home_zones):
        if in_business_hours(zone, now) or not open_now:
            zones.append(zone)
        else:
            zones.append(open_now[index % len(open_now)])
    return zones


def sweep_time(plan: CompiledPlan, now: datetime) -> datetime:
    """When the demo sweeps a date or schedule playbook: now, except for a schedule whose
    window opens later in this period (QBRs three weeks before the quarter ends), which is
    swept as on its opening day, so the demo shows it in any month."""
    trigger = plan.trigger
    if trigger and trigger.kind == "schedule" and trigger.every:
        first, last, _ = period(trigger.every, now.date())
        if trigger.before_end_seconds is not None:
            opens = last - timedelta(seconds=trigger.before_end_seconds) + timedelta(days=1)
        else:
            opens = first + timedelta(seconds=trigger.after_start_seconds or 0)
        if now.date() < opens:
            return datetime.combine(opens, time(12), UTC)
    return now


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
    now = datetime.now(UTC)
    today = now.date()
    zones = demo_zones([c[3] for c in COMPANIES], now)
    with services.sessions.begin() as session:
        for member in team:
            row = session.get(TeamMember, member.email.lower()) or TeamMember(
                email=member.email.lower()
            )
            row.name, row.roles = member.name, member.roles
            row.timezone = TEAM_ZONES.get(row.email, row.timezone or "UTC")
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
        for index, (cid, name, segment, _, health) in enumerate(COMPANIES):
            tz = zones[index]
            domain = f"{cid}.example"
            # Half, and the accounts at risk, renew exactly 120 days from now, so the renewal
            # sweep enrolls them today (and triages the at-risk ones to a save plan).
            soon = index % 2 == 0 or health < 50
            renewal = today + timedelta(days=120 if soon else 200 + 30 * index)
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
    with services.sessions.begin() as session:  # a year of made-up past for the reports
        seed_history(
            session,
            services.project.plans.values(),
            datetime.now(UTC),
            customers=[cid for cid, *_ in COMPANIES],
        )
        if services.project.scorecard is not None:  # 90 days of scores for the health pages
            seed_health(
                session,
                services.project.scorecard,
                datetime.now(UTC),
                {cid: health for cid, *_, health in COMPANIES},
                falling=FALLING_BEHIND,
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
    # The older half of the generated accounts finished onboarding before the demo began.
    for cid in [c[0] for c in COMPANIES][1::2]:
        await router.handle(
            f"demo-onboarded-{cid}-{today.isoformat()}",
            cid,
            "customer.onboarded",
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
                sweep_time(plan, datetime.now(UTC)),
            )
    return DemoCredentials(len(customers), ADMIN, PASSWORD, token)


def fall_behind(services: Services, customer_id: str, by: int = 4) -> int | None:
    """Lower a customer's health score by ``by`` (not below `HEALTH_FLOOR`); the new score,
    or None when there is nothing to lower."""
    with services.sessions.begin() as session:
        customer = session.get(Customer, customer_id)
        if customer is None or customer.health_score is None:
            return None
        score = max(HEALTH_FLOOR, customer.health_score - by)
        if score != customer.health_score:
            repository.upsert_customer(
                session,
                repository.CustomerData(id=customer_id, name=customer.name, health_score=score),
            )
        return score


async def escalate_at_risk(services: Services) -> list[str]:
    """The owner of each open at-risk renewal task gives up on a save plan alone and
    escalates it (outcome 'escalated'), so the manager gets the executive escalation."""
    with services.sessions() as session:
        open_tasks = list(
            session.scalars(
                select(Task).where(
                    Task.playbook_id == "renewal",
                    Task.step_id == "save_plan",
                    Task.status == TaskStatus.OPEN,
                    Task.assignee_email.is_not(None),
                    # Not the made-up year of history: no enrollment waits on those tasks.
                    Task.enrollment_id.not_like(f"{PREFIX}%"),
                )
            )
        )
    escalated = []
    for task in open_tasks:
        try:
            await tasks.complete_task(
                services,
                task.id,
                "escalated",
                task.assignee_email or ADMIN,
                "Usage keeps falling and the sponsor is not answering; need executive help.",
            )
        except ServiceError as exc:
            log.warning("demo: could not escalate task %s: %s", task.id, exc)
            continue
        escalated.append(task.id)
    return escalated


async def run_demo(
    services: Services, stop: asyncio.Event, every: float = 3.0, escalate_after: int = 20
) -> None:
    """Post a plausible usage event for a random customer every few seconds; every tenth
    tick the `FALLING_BEHIND` accounts lose health, and after ``escalate_after`` ticks (a
    minute) the at-risk renewals are escalated."""
    rng = random.Random(11)
    customers = [c[0] for c in COMPANIES]
    tick = 0
    while not stop.is_set():
        await asyncio.sleep(every)
        tick += 1
        try:
            if tick % 10 == 0:
                for customer_id in FALLING_BEHIND:
                    fall_behind(services, customer_id)
            if tick == escalate_after:
                await escalate_at_risk(services)
        except Exception:  # the demo's story must not stop its event stream
            log.warning("demo: a health drop or an escalation failed", exc_info=True)
        customer = rng.choice(customers)
        name = rng.choice(USAGE)
        properties = {"value": rng.randint(1, 9)} if name == "weekly_active_users" else {}
        try:
            await services.router.handle(
                uuid.uuid4().hex, customer, name, datetime.now(UTC), properties
            )
        except Exception:
            continue


__all__ = ["DemoCredentials", "date", "run_demo", "seed_demo", "sweep_time"]
