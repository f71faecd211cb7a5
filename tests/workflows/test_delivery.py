"""The contact budget on a real Temporal server and a real store (docs/delivery.md).

A capped email is deferred to the contact's next allowed day and keeps its send window, or
skipped when the policy says so; a higher-priority email waiting for the same slot goes
first; two enrollments racing for a contact's last slot never both send; every email to a
customer contact carries the unsubscribe link and postal address, the team's neither.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import ActivityEnvironment

from activities.email import EmailActivities
from activities.mailer import CaptureMailer
from engine.language.compliance import DEFAULT_POSTAL_ADDRESS
from engine.language.delivery import Send, cap_violations
from engine.language.plan import CompiledPlan
from engine.messages import SendEmailInput
from engine.project import Project
from engine.store import repository
from engine.store.models import OutboxMessage
from tests.helpers.databases import BACKENDS
from tests.helpers.harness import in_window, local, running, seed_customer, write_project

ADA = "ada@acme.example"
BEA = "bea@acme.example"
ZONE = "Europe/Berlin"
ONE_A_DAY = "caps:\n  - {max: 1, days: 1}\n"
# A window open on any day the test may run, so the second email meets the cap whatever the
# time: before 01:00 it waits for the window, which opens on the first email's day.
EVERY_DAY_BUT_1AM = '{days: [mon, tue, wed, thu, fri, sat, sun], between: ["01:00", "23:59"]}'


def email_playbook(name: str, *steps: tuple[str, str]) -> str:
    """A manual playbook sending one inline email per (step id, send window) in turn."""
    lines = [f"playbook: {name}", f"name: {name}", "trigger: {manual: true}", "steps:"]
    for step, window in steps:
        lines += [
            f"  - id: {step}",
            "    email:",
            f'      subject: "{name} {step}"',
            f'      body: "<p>{step} for {{{{ contact.first_name }}}}</p>"',
            *([f"      send_window: {window}"] if window else []),
        ]
    lines += ["  - id: done", "    end: {outcome: emailed}"]
    return "\n".join(lines) + "\n"


def project(root: Path, policy: str, playbooks: dict[str, str]) -> Project:
    root.mkdir(parents=True, exist_ok=True)
    (root / "policies.yaml").write_text(policy)
    return write_project(root, playbooks)


def rows(h, playbook: str | None = None) -> list[OutboxMessage]:
    return [m for m in h.outbox() if playbook is None or m.playbook_id == playbook]


async def test_a_capped_email_is_deferred_to_the_next_day_inside_its_window(
    temporal_env, sessions, task_queue, customer_id, tmp_path
):
    plan = project(
        tmp_path,
        ONE_A_DAY,
        {"pair": email_playbook("pair", ("first", "anytime"), ("second", EVERY_DAY_BUT_1AM))},
    ).plan("pair")
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}])
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        result = await h.result(await h.start(plan))

    assert result.outcome == "emailed"
    first, second = rows(h)
    assert (first.status, second.status) == ("captured", "captured")
    assert first.budget_at is not None and second.budget_at is not None
    # The next day of the contact's calendar, and inside the second step's window.
    assert local(second.budget_at, ZONE).date() > local(first.budget_at, ZONE).date()
    assert in_window(second.budget_at, ZONE, range(7), (1, 24))
    assert "deferred: cap of 1 email a day reached" in (second.reason or "")
    assert second.not_before is not None
    assert timedelta(0) <= second.budget_at - second.not_before < timedelta(minutes=1)
    waits = [r for r in result.records if r.kind == "wait" and r.step == "second"]
    assert any("deferred: cap of 1 email a day" in r.detail for r in waits), waits
    sends = [Send(m.contact_email, m.budget_at, ZONE) for m in (first, second) if m.budget_at]
    assert cap_violations(sends, plan.delivery.caps if plan.delivery else []) == []


async def test_a_capped_email_is_skipped_when_the_policy_says_so(
    temporal_env, sessions, task_queue, customer_id, tmp_path
):
    policy = ONE_A_DAY + "playbooks:\n  pair: {on_cap: skip}\n"
    plan = project(
        tmp_path,
        policy,
        {"pair": email_playbook("pair", ("first", "anytime"), ("second", "anytime"))},
    ).plan("pair")
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}])
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        result = await h.result(await h.start(plan))

    assert result.outcome == "emailed"
    first, second = rows(h)
    assert (first.status, second.status) == ("captured", "skipped")
    assert second.reason == f"cap of 1 email a day reached for {ADA}"
    assert second.budget_at is None, "a skipped email is not charged"
    [email] = [r for r in result.records if r.kind == "email" and r.step == "second"]
    assert email.data["deliveries"][0]["status"] == "skipped"


async def test_the_higher_priority_email_takes_the_next_slot(
    temporal_env, sessions, task_queue, customer_id, tmp_path, monkeypatch
):
    policy = ONE_A_DAY + "playbooks:\n  low: {priority: 10}\n  high: {priority: 30}\n"
    built = project(
        tmp_path,
        policy,
        {
            "low": email_playbook("low", ("note", "anytime")),
            "high": email_playbook("high", ("note", "anytime")),
        },
    )
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}])
    decide = EmailActivities._apply_policy

    def high_comes_late(self, session, input, *args):  # the lower priority asks first
        if input.playbook == "high":
            time.sleep(0.5)
        return decide(self, session, input, *args)

    monkeypatch.setattr(EmailActivities, "_apply_policy", high_comes_late)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        now = await h.now()
        with sessions.begin() as session:  # today's slot is already taken
            row, _ = repository.insert_outbox(
                session, "earlier", ADA, "Earlier", customer_id=customer_id
            )
            row.budget_at = now
        # The lower priority starts first, so without priorities it would win the slot.
        low = await h.start(built.plan("low"))
        high = await h.start(built.plan("high"))
        await h.result(low)
        await h.result(high)

    [low_row], [high_row] = rows(h, "low"), rows(h, "high")
    assert low_row.budget_at is not None and high_row.budget_at is not None
    today = local(now, ZONE).date()
    assert local(high_row.budget_at, ZONE).date() == today + timedelta(days=1)
    assert local(low_row.budget_at, ZONE).date() == today + timedelta(days=2)


def send_input(
    plan: CompiledPlan, customer_id: str, enrollment: str, now: datetime
) -> SendEmailInput:
    step = plan.steps[0]
    assert step.email is not None
    return SendEmailInput(
        enrollment_id=enrollment,
        enrollment_key=enrollment,
        playbook=plan.playbook,
        version=plan.version,
        step_id=step.id,
        iteration=1,
        customer_id=customer_id,
        email=step.email,
        templates=plan.templates,
        now=now,
        per_recipient=True,
        delivery=plan.delivery,
    )


@pytest.mark.parametrize("backend", BACKENDS)  # PostgreSQL when DATABASE_URL_POSTGRES is set
def test_two_enrollments_racing_for_the_last_slot_never_both_send(
    sessions, customer_id, tmp_path, monkeypatch
):
    """Both read the contact's count with the other in flight: the lock row decides."""
    plan = project(tmp_path, ONE_A_DAY, {"race": email_playbook("race", ("note", "anytime"))}).plan(
        "race"
    )
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}])
    counted = repository.contact_budget

    def slow_count(*args, **kwargs):  # widen the gap between counting and charging
        found = counted(*args, **kwargs)
        time.sleep(0.3)
        return found

    monkeypatch.setattr(repository, "contact_budget", slow_count)
    activities = EmailActivities(sessions, CaptureMailer())
    now = datetime.now(UTC)
    start = threading.Barrier(2)
    results = {}

    def enrollment(name: str) -> None:
        start.wait()
        results[name] = ActivityEnvironment().run(
            activities.send_email, send_input(plan, customer_id, name, now)
        )

    threads = [threading.Thread(target=enrollment, args=(n,)) for n in ("one", "two")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    statuses = sorted(r.deliveries[0].status for r in results.values())
    assert statuses == ["captured", "postponed"]
    with sessions() as session:
        charged = session.scalars(
            select(OutboxMessage).where(OutboxMessage.budget_at.is_not(None))
        ).all()
    assert len(charged) == 1


def test_every_customer_email_carries_the_unsubscribe_link_and_postal_address(
    sessions, customer_id, tmp_path
):
    """An inline body without either gets both, in the HTML and the text part; the team's
    copy (the owner) gets neither."""
    source = email_playbook("inline", ("note", "anytime"))
    plan = project(tmp_path, "caps: []\n", {"inline": source}).plan("inline")
    owner_plan = plan.model_copy(
        update={
            "steps": [
                plan.steps[0].model_copy(
                    update={
                        "email": plan.steps[0].email.model_copy(  # type: ignore[union-attr]
                            update={"recipient": "owner", "to": None}
                        )
                    }
                ),
                *plan.steps[1:],
            ]
        }
    )
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}])
    activities = EmailActivities(sessions, CaptureMailer())
    now = datetime.now(UTC)
    ActivityEnvironment().run(activities.send_email, send_input(plan, customer_id, "c", now))
    ActivityEnvironment().run(activities.send_email, send_input(owner_plan, customer_id, "t", now))
    with sessions() as session:
        by_key = {
            m.idempotency_key.split(":")[0]: m for m in session.scalars(select(OutboxMessage))
        }
    customer, team = by_key["c"], by_key["t"]
    assert customer.html and customer.text and team.html and team.text
    assert DEFAULT_POSTAL_ADDRESS in customer.html and DEFAULT_POSTAL_ADDRESS in customer.text
    assert "/unsubscribe/" in customer.html and "/unsubscribe/" in customer.text
    assert ">Unsubscribe</a>" in customer.html
    assert DEFAULT_POSTAL_ADDRESS not in team.html and "/unsubscribe/" not in team.text


VARIANTS = """\
playbook: variants
name: Variants
trigger: {manual: true}
reenroll: always
steps:
  - id: note
    email:
      subject: "Long note"
      body: "<p>long</p>"
      send_window: anytime
      variants:
        - {name: long, weight: 1}
        - {name: short, weight: 1, subject: "Short note", body: "<p>short</p>"}
  - id: done
    end: {outcome: emailed}
"""


async def test_a_contact_gets_the_same_variant_in_every_enrollment(
    temporal_env, sessions, task_queue, tmp_path
):
    plan = project(tmp_path, "caps: []\n", {"variants": VARIANTS}).plan("variants")
    contacts = [{"email": f"c{i}@acme.example"} for i in range(8)]
    seed_customer(sessions, "variants-acme", timezone=ZONE, contacts=contacts)
    async with running(temporal_env, sessions, task_queue, customer_id="variants-acme") as h:
        await h.result(await h.start(plan))
        first = {m.contact_email: m for m in h.outbox()}
        await h.result(await h.start(plan, cycle_key="again"))
        second = [
            m
            for m in h.outbox()
            if m.contact_email in first and m.id not in {r.id for r in first.values()}
        ]

    assert {m.variant for m in first.values()} == {"long", "short"}
    for row in first.values():
        assert row.subject == ("Short note" if row.variant == "short" else "Long note")
    assert len(second) == len(first)
    assert {m.contact_email: m.variant for m in second} == {e: m.variant for e, m in first.items()}


def test_a_postponed_email_ends_suppressed_or_failed_with_why_it_waited(
    sessions, customer_id, tmp_path
):
    """An email deferred by a cap whose contact unsubscribes, or whose template stops
    rendering, while it waits is not left `postponed`: its row gets the final status, and a
    reason that keeps why it waited."""
    plan = project(tmp_path, ONE_A_DAY, {"held": email_playbook("held", ("note", "anytime"))}).plan(
        "held"
    )
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}, {"email": BEA}])
    activities = EmailActivities(sessions, CaptureMailer())
    now = datetime.now(UTC)
    with sessions.begin() as session:  # today's slot of both contacts is already taken
        for address in (ADA, BEA):
            row, _ = repository.insert_outbox(session, f"earlier-{address}", address, "Earlier")
            row.budget_at = now
    first = ActivityEnvironment().run(
        activities.send_email, send_input(plan, customer_id, "held", now)
    )
    assert [d.status for d in first.deliveries] == ["postponed", "postponed"]
    later = max(d.not_before for d in first.deliveries if d.not_before)
    with sessions.begin() as session:  # meanwhile Ada unsubscribes...
        customer = repository.get_customer(session, customer_id)
        assert customer is not None
        [ada] = [c for c in customer.contacts if c.email == ADA]
        ada.unsubscribed = True
    again = send_input(plan, customer_id, "held", later)  # ...and the body stops rendering
    assert again.email.html_template is not None
    broken = {**again.templates, again.email.html_template: "{{ contact.first_name.nope() }}"}
    result = ActivityEnvironment().run(
        activities.send_email, again.model_copy(update={"templates": broken})
    )

    statuses = {d.contact: d.status for d in result.deliveries}
    assert statuses == {ADA: "suppressed", BEA: "failed"}
    with sessions() as session:
        held = {
            m.contact_email: m
            for m in session.scalars(
                select(OutboxMessage).where(OutboxMessage.playbook_id == "held")
            )
        }
    assert held[ADA].status == "suppressed" and held[BEA].status == "failed"
    assert held[ADA].reason is not None and held[BEA].reason is not None
    assert held[ADA].reason.startswith("deferred: cap of 1 email a day reached")
    assert held[ADA].reason.endswith("then contact unsubscribed")
    assert "then template failed to render" in held[BEA].reason
    assert held[ADA].budget_at is None and held[BEA].budget_at is None


def test_an_email_keeps_the_key_of_the_run_that_sent_it(sessions, customer_id, tmp_path):
    """The reports find an email's version by it: the workflow ID repeats across runs."""
    plan = project(tmp_path, ONE_A_DAY, {"keyed": email_playbook("keyed", ("note", "anytime"))})
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=[{"email": ADA}])
    sent = send_input(plan.plan("keyed"), customer_id, "keyed/x", datetime.now(UTC))
    ActivityEnvironment().run(
        EmailActivities(sessions, CaptureMailer()).send_email,
        sent.model_copy(update={"enrollment_key": "keyed/x#2"}),
    )
    with sessions() as session:
        [run_key] = session.scalars(
            select(OutboxMessage.run_key).where(OutboxMessage.customer_id == customer_id)
        )
    assert run_key == "keyed/x#2"
