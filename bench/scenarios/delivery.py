"""Scenario 6, delivery: what the contact budget costs per email.

The same `send_email` activity, on the same SQLite store, renders and captures one email to
each contact of ``sizes.enrollments`` customers twice: once for a plan without a delivery
policy, once for the same plan under the shipped one (caps, priorities, days off). Under the
policy every email takes its contact's budget row, counts what the contact received and is
charged; without it, none of that happens. Goal (issue 17): the policy keeps at least 0.9 of
the throughput.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.report import Metric
from bench.scenarios.spec import SHIPPED, BenchFailure, Progress, Sizes
from engine.project import load_project

GOAL = 0.9
CONTACTS = 2
PLAYBOOK = """\
playbook: note
name: Note
trigger: {manual: true}
steps:
  - id: note
    email:
      subject: "A note for {{ contact.first_name }}"
      body: "<p>Hi {{ contact.first_name }}, {{ customer.name }} is set up.</p>"
      send_window: anytime
"""


async def delivery(sizes: Sizes, progress: Progress) -> list[Metric]:
    """Emails per second through `send_email` with the shipped policy and without one."""
    rates: dict[str, list[float]] = {"policy": [], "none": []}
    report = progress.phase("delivery: send_email with and without a policy", 2 * sizes.rounds)
    done = 0
    for round_no in range(sizes.rounds):
        for variant in ("none", "policy") if round_no % 2 == 0 else ("policy", "none"):
            rates[variant].append(_run(sizes.enrollments, with_policy=variant == "policy"))
            done += 1
            report(done)
    # Medians, not the best run: on a shared machine one lucky run decided the ratio.
    with_policy, without = statistics.median(rates["policy"]), statistics.median(rates["none"])
    ratio = with_policy / without
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return [
        Metric(
            "delivery",
            "send_email under the contact budget (vs no policy)",
            "emails/s",
            with_policy,
            without,
            goal=f">= {GOAL}x",
            met=ratio >= GOAL,
            note=f"{sizes.enrollments * CONTACTS} emails a run, median of {sizes.rounds}"
            f" (runs {_rates(rates['policy'])} vs {_rates(rates['none'])}; load {load})",
        )
    ]


def _rates(values: list[float]) -> str:
    return "/".join(f"{value:.1f}" for value in values)


def _run(customers: int, *, with_policy: bool) -> float:
    from temporalio.testing import ActivityEnvironment

    from activities.email import EmailActivities
    from activities.mailer import CaptureMailer
    from engine.messages import SendEmailInput
    from engine.store import repository
    from engine.store.db import engine_of, migrate, session_factory

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "project"
        root.mkdir()
        (root / "milestones.yaml").write_text((SHIPPED / "milestones.yaml").read_text())
        (root / "note.yaml").write_text(PLAYBOOK)
        if with_policy:
            (root / "policies.yaml").write_text((SHIPPED / "policies.yaml").read_text())
        plan = load_project(root).plan("note")
        if with_policy != (plan.delivery is not None):
            raise BenchFailure("delivery: the policy was not applied as intended")
        url = f"sqlite:///{tmp}/store.db"
        migrate(url)
        sessions = session_factory(url)
        with sessions.begin() as session:
            for index in range(customers):
                repository.upsert_customer(
                    session,
                    repository.CustomerData(
                        id=f"c{index}",
                        name=f"Customer {index}",
                        timezone="Europe/Berlin",
                        contacts=[
                            repository.ContactData(email=f"p{n}@c{index}.example", first_name="Pat")
                            for n in range(CONTACTS)
                        ],
                    ),
                )
        activities = EmailActivities(sessions, CaptureMailer())
        step = plan.steps[0]
        assert step.email is not None
        now = datetime(2027, 3, 3, 10, 0, tzinfo=UTC)  # a Wednesday, no holiday
        env = ActivityEnvironment()
        began = time.perf_counter()
        for index in range(customers):
            result = env.run(
                activities.send_email,
                SendEmailInput(
                    enrollment_id=f"note/c{index}",
                    enrollment_key=f"note/c{index}",
                    playbook=plan.playbook,
                    version=plan.version,
                    step_id=step.id,
                    iteration=1,
                    customer_id=f"c{index}",
                    email=step.email,
                    templates=plan.templates,
                    now=now,
                    per_recipient=True,
                    delivery=plan.delivery,
                ),
            )
            if any(d.status != "captured" for d in result.deliveries):
                raise BenchFailure(f"delivery: not captured: {result.summary}")
        elapsed = time.perf_counter() - began
        engine_of(sessions).dispose()
    return customers * CONTACTS / elapsed
