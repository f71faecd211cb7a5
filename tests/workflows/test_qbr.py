"""QBR: the prepare task's outcome decides between the sponsor meeting and the manager."""

from __future__ import annotations

from datetime import date, timedelta

from tests.helpers.harness import MANAGER, OWNER, records, running, seed_customer

CONTACTS = [
    {"email": "ada@acme.example", "first_name": "Ada", "role": "admin"},
    {"email": "sue@acme.example", "first_name": "Sue", "role": "sponsor"},
    {"email": "carl@acme.example", "first_name": "Carl", "role": "champion"},
]
CYCLE = "2026-Q4"


async def test_scheduled_qbr_invites_the_sponsor_only_then_recaps(
    temporal_env, sessions, task_queue, project, customer_id
):
    seed_customer(sessions, customer_id, contacts=CONTACTS, health=72, renewal=date(2027, 6, 30))
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("qbr"), cycle_key=CYCLE)
        assert handle.id == f"qbr/{customer_id}/{CYCLE}"
        [prepare] = await h.until(lambda: h.tasks("prepare"))
        assert prepare.assignee_email == OWNER
        assert "Health score: 72 / 100" in (prepare.description or "")
        assert "Renewal date: 2027-06-30" in (prepare.description or "")
        await temporal_env.sleep(timedelta(days=2))
        await h.complete(handle, prepare.id, "scheduled")
        result = await h.result(handle)

    assert result.outcome == "held"
    assert [m.contact_email for m in h.outbox("invite_sponsor")] == ["sue@acme.example"]
    assert {m.contact_email for m in h.outbox("recap")} == {
        "sue@acme.example",
        "carl@acme.example",
    }
    [invited] = records(result, "email", "invite_sponsor")
    [recapped] = records(result, "email", "recap")
    assert recapped.at - invited.at >= timedelta(days=14)
    [follow_up] = h.tasks("follow_up")
    assert follow_up.assignee_email == OWNER
    assert follow_up.status == "open"
    assert h.task(prepare.id).status == "completed"
    assert not h.tasks("declined_review")


async def test_declined_qbr_goes_to_the_manager(
    temporal_env, sessions, task_queue, project, customer_id
):
    seed_customer(sessions, customer_id, contacts=CONTACTS, health=41)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("qbr"), cycle_key=CYCLE)
        [prepare] = await h.until(lambda: h.tasks("prepare"))
        await h.complete(handle, prepare.id, "declined")
        result = await h.result(handle)

    assert result.outcome == "declined"
    [review] = h.tasks("declined_review")
    assert review.assignee_email == MANAGER
    assert review.priority == "high"
    assert review.title == "QBR declined by Acme Corp: review the relationship"
    # The enrollment ends right after creating it; the manager's task stays open.
    assert review.status == "open"
    assert "Health score: 41" in " ".join((review.description or "").split())
    assert not h.outbox()
    assert not h.tasks("follow_up")
