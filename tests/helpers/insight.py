"""Known data for the reports, every figure of which the tests work out by hand.

`seed_known(session)` writes, as of `NOW`:

- playbook ``onb`` version ``v1`` (steps welcome, wait, call, done) and eight runs; see
  tests/reports/test_reports.py for the funnel they make;
- customers a..d with milestones (time to value), customers p1..p6 (portfolio);
- emails of step ``welcome`` in variants A and B with their engagement;
- tasks of two CSMs.

The demo screenshots and the web tests use the same data, so the pages show these figures.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from engine.statuses import EnrollmentStatus, OutboxStatus, TaskStatus
from engine.store import insight, repository
from engine.store.models import Customer, MilestoneState, OutboxMessage, Task

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
SINCE = date(2026, 4, 1)
PLAN: dict[str, Any] = {
    "playbook": "onb",
    "steps": [
        {"id": "welcome", "kind": "email"},
        {"id": "wait", "kind": "wait"},
        {"id": "call", "kind": "task"},
        {"id": "done", "kind": "end"},
    ],
}
S = EnrollmentStatus
# customer, segment, status, started (days before NOW), steps entered (days before NOW each)
RUNS: list[tuple[str, str, EnrollmentStatus, int, list[tuple[str, int]]]] = [
    ("c1", "ent", S.COMPLETED, 30, [("welcome", 30), ("wait", 30), ("call", 20), ("done", 19)]),
    ("c2", "ent", EnrollmentStatus.EXITED, 30, [("welcome", 30), ("wait", 29)]),
    ("c3", "ent", EnrollmentStatus.RUNNING, 30, [("welcome", 30), ("wait", 30), ("call", 2)]),
    ("c4", "ent", EnrollmentStatus.RUNNING, 45, [("welcome", 40)]),
    ("c5", "ent", EnrollmentStatus.GOAL_REACHED, 30, [("welcome", 30), ("wait", 30)]),
    ("c6", "ent", EnrollmentStatus.RUNNING, 1, []),
    ("c7", "smb", S.COMPLETED, 30, [("welcome", 30), ("wait", 30), ("call", 25), ("done", 25)]),
    ("c8", "ent", EnrollmentStatus.COMPLETED, 160, [("welcome", 160), ("done", 150)]),
]  # fmt: skip


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def _customer(session: Session, cid: str, **fields: Any) -> None:
    session.add(Customer(id=cid, name=f"Customer {cid.upper()}", **fields))


def seed_funnel(session: Session) -> None:
    repository.register_playbook_version(
        session, playbook_id="onb", version="v1", name="Onboarding", source="", plan=PLAN
    )
    # c1 ran once before, in March, under the same workflow ID: that run's visits (its own
    # run key, and no enrollment row left) must not count towards the run that replaced it.
    insight.record_step_visits(
        session,
        run_key="run-c1-old",
        workflow_id="wf-c1",
        playbook_id="onb",
        version="v1",
        customer_id="c1",
        visits=[("welcome", 1, datetime(2026, 3, 1, tzinfo=UTC))],
    )
    for cid, segment, status, started, steps in RUNS:
        _customer(session, cid, segment=segment, created_at=_ago(started + 5))
        ended = status != EnrollmentStatus.RUNNING
        repository.upsert_enrollment(
            session,
            workflow_id=f"wf-{cid}",
            enrollment_key=f"run-{cid}",
            playbook_id="onb",
            version="v1",
            customer_id=cid,
            status=status,
            current_step="end" if ended else (steps[-1][0] if steps else "welcome"),
            started_at=_ago(started),
            ended_at=_ago(min(d for _, d in steps)) if ended and steps else None,
            new=True,
        )
        insight.record_step_visits(
            session,
            run_key=f"run-{cid}",
            workflow_id=f"wf-{cid}",
            playbook_id="onb",
            version="v1",
            customer_id=cid,
            visits=[(step, 1, _ago(days)) for step, days in steps],
        )


def seed_ttv(session: Session) -> None:
    created = {"a": date(2026, 1, 10), "b": date(2026, 1, 20), "c": date(2026, 2, 5),
               "d": date(2026, 2, 10)}  # fmt: skip
    reached = {("a", "activated"): 5, ("b", "activated"): 40, ("c", "activated"): 10,
               ("a", "kickoff"): 2}  # fmt: skip
    for cid, day in created.items():
        start = datetime.combine(day, datetime.min.time(), UTC)
        _customer(session, cid, segment="ttv", created_at=start)
    session.flush()
    for (cid, milestone), days in reached.items():
        start = datetime.combine(created[cid], datetime.min.time(), UTC)
        session.add(
            MilestoneState(customer_id=cid, milestone=milestone, reached_at=start + timedelta(days))
        )


def seed_email(session: Session) -> None:
    """Variant A: 100 delivered (10 clicked, 40 more opened) and 2 bounced; variant B: 100
    delivered (30 clicked, 30 more opened); one suppressed email, which does not count."""
    _customer(session, "m1", segment="mail")
    repository.upsert_enrollment(
        session, workflow_id="wf-m1", playbook_id="onb", version="v1", customer_id="m1",
        started_at=_ago(100), new=True,
    )  # fmt: skip
    plan = {"A": (10, 40, 50, 2), "B": (30, 30, 40, 0)}
    n = 0
    for variant, (clicked, opened, delivered, bounced) in plan.items():
        fates = ["click"] * clicked + ["open"] * opened + ["delivered"] * delivered
        fates += ["bounce"] * bounced
        for fate in fates:
            n += 1
            row = OutboxMessage(
                idempotency_key=f"mail-{n}", enrollment_id="wf-m1", run_key="wf-m1",
                playbook_id="onb",
                step_id="welcome", customer_id="m1", contact_email=f"p{n}@m1.example",
                subject="Welcome", status=OutboxStatus.SENT, variant=variant,
                created_at=_ago(10),
            )  # fmt: skip
            session.add(row)
            session.flush()
            # SendGrid order is not guaranteed: the click may come first.
            kinds = {"click": ["click", "delivered"], "open": ["delivered", "open"]}
            for i, kind in enumerate(kinds.get(fate, [fate])):
                insight.record_engagement(
                    session, event_id=f"sg-{n}-{i}", outbox_id=row.id, sendgrid_event=kind,
                    at=_ago(9),
                )  # fmt: skip
    session.add(
        OutboxMessage(
            idempotency_key="mail-suppressed", enrollment_id="wf-m1", run_key="wf-m1",
            playbook_id="onb",
            step_id="welcome", customer_id="m1", contact_email="gone@m1.example",
            subject="Welcome", status=OutboxStatus.SUPPRESSED, variant="A", created_at=_ago(10),
        )
    )  # fmt: skip


def seed_tasks(session: Session) -> None:
    _customer(session, "t1", segment="tasks")
    common = {"playbook_id": "onb", "customer_id": "t1", "title": "Call"}
    made = _ago(20)
    session.add_all(
        [
            Task(id="k1", idempotency_key="k1", assignee_email="x@cs.example", created_at=made,
                 due_at=made + timedelta(hours=24), status=TaskStatus.COMPLETED, outcome="done",
                 completed_at=made + timedelta(hours=2), **common),
            Task(id="k2", idempotency_key="k2", assignee_email="x@cs.example", created_at=made,
                 due_at=made + timedelta(hours=24), status=TaskStatus.COMPLETED, outcome="done",
                 completed_at=made + timedelta(hours=50), **common),
            Task(id="k3", idempotency_key="k3", assignee_email="x@cs.example", created_at=made,
                 due_at=made + timedelta(hours=24), escalated_at=made + timedelta(hours=25),
                 **common),
            Task(id="k4", idempotency_key="k4", assignee_email="y@cs.example", created_at=made,
                 status=TaskStatus.COMPLETED, outcome="no_show",
                 completed_at=made + timedelta(hours=4), **common),
        ]
    )  # fmt: skip


def seed_portfolio(session: Session) -> None:
    today = NOW.date()
    customers = [
        ("p1", "red", 39, today + timedelta(days=10)),
        ("p2", "red", 40, today + timedelta(days=90)),
        ("p3", "blue", 69, today + timedelta(days=91)),
        ("p4", "blue", 70, today - timedelta(days=1)),
        ("p5", "blue", None, None),
    ]
    for cid, segment, health, renewal in customers:
        _customer(session, cid, segment=f"pf-{segment}", health_score=health, renewal_date=renewal)


def seed_known(session: Session) -> None:
    """Everything above, in one transaction the caller commits."""
    seed_funnel(session)
    seed_ttv(session)
    seed_email(session)
    seed_tasks(session)
    seed_portfolio(session)
    session.flush()
