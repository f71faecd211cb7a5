"""Date triggers on an existing book, and dates that move (issue 13, defects 2 and 3).

On the time-skipping server with the real sweep, store and shipped renewal playbook: a
customer whose trigger date has passed enrolls as the trigger's late policy says, a late
enrollment gets only the touches still ahead, a renewal date the CRM moves moves the running
wait, and one moved a year ahead ends the cycle so that the next enrolls when due.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio.testing import WorkflowEnvironment

from engine.client.sweeps import sweep
from engine.language.plan import CompiledPlan
from engine.messages import EnrollmentResult
from engine.project import Project
from engine.services.customers import notify_changed, save_customer
from engine.store import repository
from tests.helpers.harness import Harness, local, records, running, seed_customer, write_project

ZONE = "America/New_York"
CONTACTS = [
    {"email": "ada@acme.example", "first_name": "Ada", "role": "admin"},
    {"email": "sue@acme.example", "first_name": "Sue", "role": "sponsor"},
]
# The shipped renewal trigger, with steps that show how late the enrollment started.
LATENESS = """\
playbook: lateness
name: Lateness
trigger:
  on_date: customer.renewal_date - days(120)
steps:
  - id: how_late
    branch:
      cases:
        - if: enrollment.late_days > 0
          goto: late
      otherwise: on_time
  - id: on_time
    end: {outcome: on_time}
  - id: late
    end: {outcome: late}
"""


def weekday_renewal(today: date, days_out: int, touches: tuple[int, ...] = (60, 30)) -> date:
    """``days_out`` ahead or a little later, so each touch (days before) falls on a weekday
    (the renewal emails then go out at 10:00 sharp, not when Monday's window opens)."""
    renews = today + timedelta(days=days_out)
    while any((renews - timedelta(days=d)).weekday() >= 5 for d in touches):
        renews += timedelta(days=1)
    return renews


async def _today(env: WorkflowEnvironment) -> date:
    return local(await env.get_current_time(), ZONE).date()


async def _sweep(h: Harness, plan: CompiledPlan, now: datetime | None = None) -> list[str]:
    started = await sweep(
        h.sessions,
        h.env.client,
        plan,
        h.task_queue,
        now or await h.now(),
        use_search_attributes=False,
    )
    h.started += started
    return started


async def _result(h: Harness, workflow_id: str) -> EnrollmentResult:
    return await h.result(
        h.env.client.get_workflow_handle(workflow_id, result_type=EnrollmentResult)
    )


async def _move_renewal(h: Harness, customer_id: str, renews: date) -> list[str]:
    """The CRM moves the renewal date (as `PUT /api/customers/{id}` does): save, then tell."""
    data = repository.CustomerData(id=customer_id, name="Acme Corp", renewal_date=renews)
    changed = save_customer(h.sessions, data)
    assert changed == ["renewal_date"]
    return await notify_changed(h.env.client, h.sessions, customer_id, changed)


async def test_a_date_trigger_enrolls_customers_whose_day_passed_while_the_anchor_is_ahead(
    temporal_env: WorkflowEnvironment, sessions: Any, task_queue: str, project: Project, tmp_path
) -> None:
    """The shipped trigger (renewal_date - 120 days): renewing in 113 days was enrolled
    before; 112 and 90 were never enrolled. Now all three are, and steps see how late;
    a customer whose renewal date has passed is not."""
    lateness = write_project(tmp_path, {"lateness": LATENESS}).plan("lateness")
    renewal = project.plan("renewal")
    assert renewal.trigger is not None and lateness.trigger is not None
    assert (renewal.trigger.date, renewal.trigger.late) == (
        lateness.trigger.date,
        lateness.trigger.late,
    )
    today = await _today(temporal_env)
    days_out = {"on-time": 120, "in-113": 113, "in-112": 112, "in-90": 90, "renewed-1-ago": -1}
    for customer_id, days in days_out.items():
        seed_customer(sessions, customer_id, timezone=ZONE, renewal=today + timedelta(days=days))
    async with running(temporal_env, sessions, task_queue) as h:
        started = await _sweep(h, lateness)
        assert sorted(started) == sorted(
            f"lateness/{c}/{today + timedelta(days=days_out[c] - 120)}"
            for c in ("on-time", "in-113", "in-112", "in-90")
        )
        outcomes = {wid.split("/")[1]: (await _result(h, wid)).outcome for wid in started}
        assert outcomes == {
            "on-time": "on_time",
            "in-113": "late",
            "in-112": "late",
            "in-90": "late",
        }
        # The same cycle never enrolls twice, however often the sweep runs.
        assert await _sweep(h, lateness) == []
        assert sorted(await _sweep(h, renewal)) == sorted(
            w.replace("lateness/", "renewal/") for w in started
        )


async def test_a_customer_imported_70_days_before_renewal_gets_the_60_and_30_day_emails(
    temporal_env: WorkflowEnvironment, sessions: Any, task_queue: str, project: Project
) -> None:
    today = await _today(temporal_env)
    renews = weekday_renewal(today, 70)
    seed_customer(
        sessions, "late-acme", timezone=ZONE, health=90, renewal=renews, contacts=CONTACTS
    )
    async with running(temporal_env, sessions, task_queue, customer_id="late-acme") as h:
        [enrolled] = await _sweep(h, project.plan("renewal"))
        result = await _result(h, enrolled)

    assert result.outcome == "not_renewed"
    [passed] = records(result, "skipped", "wait_90")
    assert "going to wait_60" in passed.detail
    assert not h.outbox("email_90")
    for step, days in (("email_60", 60), ("email_30", 30)):
        [sent] = records(result, "email", step)
        at = local(sent.at, ZONE)
        assert (at.date(), at.hour, at.minute) == (renews - timedelta(days=days), 10, 0), step
        assert {m.contact_email for m in h.outbox(step)} == {c["email"] for c in CONTACTS}
    assert {m.step_id for m in h.outbox()} == {"email_60", "email_30"}
    assert len(h.tasks("renewal_call")) == 1


async def test_a_moved_renewal_date_moves_the_running_wait(
    temporal_env: WorkflowEnvironment, sessions: Any, task_queue: str, project: Project
) -> None:
    today = await _today(temporal_env)
    renews = weekday_renewal(today, 110, (90, 60, 30))
    moved = weekday_renewal(renews + timedelta(days=14), 0, (90, 60, 30))
    seed_customer(sessions, "moving", timezone=ZONE, health=90, renewal=renews, contacts=CONTACTS)
    async with running(temporal_env, sessions, task_queue, customer_id="moving") as h:
        [enrolled] = await _sweep(h, project.plan("renewal"))
        handle = h.env.client.get_workflow_handle(enrolled, result_type=EnrollmentResult)
        before = await h.until_step(
            handle, "wait_90", step=timedelta(hours=1), limit=timedelta(days=2)
        )
        assert before.waiting_until is not None
        assert local(before.waiting_until, ZONE).date() == renews - timedelta(days=90)

        assert await _move_renewal(h, "moving", moved) == [enrolled]
        status = await h.until_status(
            handle,
            lambda s: (
                s.waiting_until is not None
                and local(s.waiting_until, ZONE).date() == moved - timedelta(days=90)
            ),
            step=timedelta(minutes=1),
            limit=timedelta(hours=1),
        )
        assert status.current_step == "wait_90"
        result = await h.result(handle)

    assert result.outcome == "not_renewed"
    [moved_record] = records(result, "wait_moved", "wait_90")
    assert moved_record.data["until"].startswith(str(moved - timedelta(days=90)))
    for step, days in (("email_90", 90), ("email_60", 60), ("email_30", 30)):
        [sent] = records(result, "email", step)
        assert local(sent.at, ZONE).date() == moved - timedelta(days=days), step


async def test_a_renewal_a_year_ahead_ends_the_cycle_and_the_next_enrolls_when_due(
    temporal_env: WorkflowEnvironment, sessions: Any, task_queue: str, project: Project
) -> None:
    today = await _today(temporal_env)
    renews = weekday_renewal(today, 100)
    renewal = project.plan("renewal")
    seed_customer(sessions, "renewing", timezone=ZONE, health=90, renewal=renews, contacts=CONTACTS)
    async with running(temporal_env, sessions, task_queue, customer_id="renewing") as h:
        [first] = await _sweep(h, renewal)
        assert first == f"renewal/renewing/{renews - timedelta(days=120)}"
        handle = h.env.client.get_workflow_handle(first, result_type=EnrollmentResult)
        await h.until_step(handle, "wait_90", step=timedelta(hours=1), limit=timedelta(days=2))

        next_year = renews + timedelta(days=365)
        assert await _move_renewal(h, "renewing", next_year) == [first]
        result = await h.result(handle)
        assert (result.outcome, result.status) == ("anchor_moved", "exited")
        assert str(next_year - timedelta(days=120)) in (result.reason or "")
        assert h.stored_end(first) == ("exited", "anchor_moved")
        assert not h.outbox("email_90")

        # The next cycle is not due yet; it enrolls on its own trigger date.
        assert await _sweep(h, renewal) == []
        due = datetime.combine(next_year - timedelta(days=120), time(12), ZoneInfo(ZONE))
        assert await _sweep(h, renewal, due) == [
            f"renewal/renewing/{next_year - timedelta(days=120)}"
        ]
