"""Adoption: capped nudges that hand over to the CSM, and the weekly-active celebration."""

from __future__ import annotations

from datetime import timedelta

from tests.helpers.harness import OWNER, in_window, records, running, seed_customer

ZONE = "America/New_York"
TUE_TO_THU = (1, 2, 3)
ADOPTION_HOURS = (10, 16)
NUDGES = ("nudge_dashboards", "nudge_alerts", "nudge_weekly_active")
CONTACTS = [
    {"email": "ada@acme.example", "first_name": "Ada", "role": "admin"},
    {"email": "carl@acme.example", "first_name": "Carl", "role": "champion"},
    {"email": "sue@acme.example", "first_name": "Sue", "role": "sponsor"},
    {"email": "uma@acme.example", "first_name": "Uma", "role": "user"},
]


async def test_nudges_stop_at_three_and_the_csm_gets_a_stalled_task(
    temporal_env, sessions, task_queue, project, customer_id
):
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=CONTACTS)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("adoption"))
        # Nothing is ever reached: about four months of virtual time.
        result = await h.result(handle)

    assert result.outcome == "stalled"
    nudges = [m for m in h.outbox() if m.step_id in NUDGES]
    # One nudge per feature, three in all, each to the admin and the champion only.
    assert sorted({m.step_id for m in nudges}) == sorted(NUDGES)
    assert len(nudges) == 3 * 2
    assert {m.contact_email for m in nudges} == {"ada@acme.example", "carl@acme.example"}
    assert len(records(result, "email")) == 3
    assert h.customer().attributes["adoption_nudges"] == 3
    for record in records(result, "email"):
        assert in_window(record.at, ZONE, TUE_TO_THU, ADOPTION_HOURS), (record.step, record.at)

    [stalled] = h.tasks("flag_stalled")
    assert stalled.assignee_email == OWNER
    assert stalled.title == "Adoption stalled at Acme Corp"
    assert stalled.status == "open"
    assert "after 3 nudge email(s)" in " ".join((stalled.description or "").split())
    branches = records(result, "branch", "nudges_left")
    assert [b.data["goto"] for b in branches] == ["nudge_weekly_active", "flag_stalled"]
    assert not h.outbox("celebrate")


async def test_five_weekly_active_users_are_celebrated(
    temporal_env, sessions, task_queue, project, customer_id
):
    seed_customer(sessions, customer_id, timezone=ZONE, contacts=CONTACTS)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(project.plan("adoption"))
        await h.until_waiting(handle, "milestone dashboards_shared")
        await h.event(handle, "dashboard.shared", {"dashboard": "Revenue"})
        await h.until_waiting(handle, "milestone alerts_configured")
        await h.event(handle, "alert.created")
        await h.until_waiting(handle, "milestone weekly_active_5")

        await temporal_env.sleep(timedelta(days=3))
        await h.event(handle, "weekly_active_users", {"value": 3})
        status = await h.settle(handle)
        assert status.current_step == "await_weekly_active"
        assert "weekly_active_5" not in status.milestones

        await h.event(handle, "weekly_active_users", {"value": 6})
        result = await h.result(handle)

    assert result.outcome == "adopted"
    [reached] = records(result, "milestone", "await_weekly_active")
    assert reached.detail == "weekly_active_5 reached"
    celebrations = h.outbox("celebrate")
    assert {m.contact_email for m in celebrations} == {
        "ada@acme.example",
        "carl@acme.example",
        "sue@acme.example",
    }
    [celebrated] = records(result, "email", "celebrate")
    assert in_window(celebrated.at, ZONE, TUE_TO_THU, ADOPTION_HOURS)
    assert not [m for m in h.outbox() if m.step_id in NUDGES]
    assert "adoption_nudges" not in h.customer().attributes
