"""A made-up past for the reports: a year of enrollments, steps, emails, engagement, tasks
and milestones over existing customers, written in bulk.

`playbook up --demo` calls it once for the demo customers, so the report pages have
something to show at once; the benchmark (`python -m bench --only reports`) uses it for
10,000 customers. Each customer is enrolled in the first shipped playbook that has an
email step (in each other one with a chance of 30 %), walks its steps in order and drops
out, exits, reaches the goal or ends on the way;
the first email of each playbook goes out in two variants, B doing somewhat better.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from engine.language.plan import CompiledPlan
from engine.language.workdays import WorkCalendar
from engine.statuses import EnrollmentStatus, OutboxStatus, TaskStatus
from engine.store import repository
from engine.store.models import (
    Customer,
    EmailEngagement,
    Enrollment,
    MilestoneState,
    OutboxMessage,
    StepVisit,
    Task,
    TeamMember,
)

PREFIX = "history/"  # the workflow IDs of made-up runs, never those of real ones
HISTORY_RUNS = StepVisit.run_key.startswith(PREFIX)
OUTCOMES = [
    (EnrollmentStatus.COMPLETED, 0.45),
    (EnrollmentStatus.GOAL_REACHED, 0.2),
    (EnrollmentStatus.EXITED, 0.1),
    (EnrollmentStatus.RUNNING, 0.25),
]


def seed_history(
    session: Session,
    plans: Iterable[CompiledPlan],
    now: datetime,
    *,
    customers: list[str] | None = None,
    days: int = 365,
    seed: int = 7,
) -> int:
    """Write the made-up past for ``customers`` (default: all); returns enrollments written.
    Does nothing if it ran before (made-up runs are already stored)."""
    if session.scalar(select(func.count()).select_from(StepVisit).where(HISTORY_RUNS)):
        return 0
    rng = random.Random(seed)
    plans = [p for p in plans if any(s.kind == "email" for s in p.steps)]
    for plan in plans:
        repository.register_playbook_version(
            session,
            playbook_id=plan.playbook,
            version=plan.version,
            name=plan.name,
            source="",
            plan=plan.model_dump(mode="json"),
        )
    query = select(Customer.id, Customer.owner_email)
    if customers is not None:
        query = query.where(Customer.id.in_(customers))
    owners = dict(session.execute(query).all())
    # Due dates fall on the owner's working days in their zone, as the real tasks' do.
    calendars = {
        m.email: WorkCalendar(m.timezone or "UTC", tuple(m.working_days or range(5)))
        for m in session.scalars(select(TeamMember))
    }
    next_outbox = (session.scalar(select(func.max(OutboxMessage.id))) or 0) + 1
    rows: dict[type, list[dict[str, Any]]] = {
        m: [] for m in (Enrollment, StepVisit, OutboxMessage, EmailEngagement, Task)
    }
    milestones: list[dict[str, Any]] = []
    created_at: list[dict[str, Any]] = []
    for cid, owner in owners.items():
        created = now - timedelta(days=rng.uniform(1, days))
        created_at.append({"id": cid, "created_at": created})
        if rng.random() < 0.7:
            milestones.append(
                {
                    "customer_id": cid,
                    "milestone": "first_value",
                    "reached_at": min(now, created + timedelta(days=rng.expovariate(1 / 20))),
                    "count": 1,
                }
            )
        for n, plan in enumerate(plans):
            if n and rng.random() > 0.3:
                continue
            workflow_id = f"{PREFIX}{plan.playbook}/{cid}"
            at = created + timedelta(hours=rng.uniform(0, 48))
            started = at
            status = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
            walked = [s for s in plan.steps if s.kind != "end"]
            stop = rng.randint(1, len(walked)) if status != EnrollmentStatus.COMPLETED else None
            first_email = True
            visits_before = len(rows[StepVisit])
            for index, step in enumerate(walked[:stop]):
                if at > now:
                    status = EnrollmentStatus.RUNNING
                    break
                rows[StepVisit].append(
                    {"run_key": workflow_id, "workflow_id": workflow_id,
                     "playbook_id": plan.playbook, "version": plan.version, "customer_id": cid,
                     "step_id": step.id, "visit": 1, "entered_at": at, "latest": False}
                )  # fmt: skip
                if step.kind == "email":
                    variant = rng.choice("AB") if first_email else None
                    first_email = False
                    outbox_id = next_outbox
                    next_outbox += 1
                    rows[OutboxMessage].append(
                        {"id": outbox_id, "idempotency_key": f"history:{workflow_id}:{step.id}",
                         "enrollment_id": workflow_id, "run_key": workflow_id,
                         "playbook_id": plan.playbook,
                         "step_id": step.id, "customer_id": cid, "variant": variant,
                         "contact_email": f"ops@{cid}.example", "subject": step.id,
                         "headers": {}, "status": OutboxStatus.SENT, "attempts": 1,
                         "created_at": at, "sent_at": at, "updated_at": at}
                    )  # fmt: skip
                    click = 0.12 if variant == "A" else 0.2 if variant == "B" else 0.15
                    roll = rng.random()
                    if roll > 0.03:
                        rows[EmailEngagement].append(
                            {"outbox_id": outbox_id, "delivered_at": at + timedelta(minutes=1),
                             "opened_at": at + timedelta(hours=2) if roll < 0.55 else None,
                             "clicked_at": at + timedelta(hours=3) if roll < click else None,
                             "bounced_at": None, "spam_reported_at": None,
                             "unsubscribed_at": at + timedelta(days=1) if roll > 0.99 else None,
                             "opens": int(roll < 0.55), "clicks": int(roll < click)}
                        )  # fmt: skip
                    else:
                        rows[EmailEngagement].append(
                            {"outbox_id": outbox_id, "bounced_at": at + timedelta(minutes=1),
                             "delivered_at": None, "opened_at": None, "clicked_at": None,
                             "spam_reported_at": None, "unsubscribed_at": None,
                             "opens": 0, "clicks": 0}
                        )  # fmt: skip
                elif step.kind == "task":
                    due = calendars.get(owner or "", WorkCalendar()).add(at, 3 * 86_400)
                    took = timedelta(hours=rng.expovariate(1 / 40))
                    done = at + took < now and rng.random() < 0.85
                    rows[Task].append(
                        {"id": f"history-{workflow_id}-{step.id}",
                         "idempotency_key": f"history:{workflow_id}:{step.id}",
                         "enrollment_id": workflow_id, "run_key": workflow_id,
                         "playbook_id": plan.playbook,
                         "step_id": step.id, "customer_id": cid, "assignee_email": owner,
                         "title": step.id.replace("_", " "), "due_at": due, "outcomes": [],
                         "priority": "normal",
                         "status": TaskStatus.COMPLETED if done else TaskStatus.OPEN,
                         "outcome": rng.choice(["held", "no_show"]) if done else None,
                         "completed_at": at + took if done else None,
                         "escalated_at": due if not done and at + took > due else None,
                         "created_at": at}
                    )  # fmt: skip
                at += timedelta(days=rng.uniform(0.5, 6)) if index < len(walked) else timedelta()
            ended = status != EnrollmentStatus.RUNNING
            if status == EnrollmentStatus.COMPLETED:
                end = next((s for s in plan.steps if s.kind == "end"), None)
                if end is not None and at <= now:
                    rows[StepVisit].append(
                        {"run_key": workflow_id, "workflow_id": workflow_id,
                         "playbook_id": plan.playbook, "version": plan.version,
                         "customer_id": cid, "step_id": end.id, "visit": 1, "entered_at": at,
                         "latest": False}
                    )  # fmt: skip
            if visits_before < len(rows[StepVisit]):
                rows[StepVisit][-1]["latest"] = True  # where this run stands or ended
            rows[Enrollment].append(
                {"enrollment_key": workflow_id, "workflow_id": workflow_id,
                 "playbook_id": plan.playbook, "version": plan.version, "customer_id": cid,
                 "status": status,
                 "current_step": "end" if ended else None, "outcome": status if ended else None,
                 "started_at": started, "ended_at": min(at, now) if ended else None,
                 "updated_at": min(at, now)}
            )  # fmt: skip
    if created_at:
        session.execute(update(Customer), created_at)  # bulk update by primary key
    existing = set(session.scalars(select(Enrollment.workflow_id)))
    rows[Enrollment] = [r for r in rows[Enrollment] if r["workflow_id"] not in existing]
    for model, values in rows.items():
        for start in range(0, len(values), 5_000):
            session.execute(insert(model), values[start : start + 5_000])
    existing_milestones = set(session.execute(select(MilestoneState.customer_id)).scalars())
    fresh = [m for m in milestones if m["customer_id"] not in existing_milestones]
    if fresh:
        session.execute(insert(MilestoneState), fresh)
    return len(rows[Enrollment])
