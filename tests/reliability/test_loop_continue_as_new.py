"""Fault 7: a looping playbook continues-as-new several times with its state intact.

The interpreter continues as new at a step boundary when the history grows long; here the
threshold is lowered so a 12-week check-in loop does it every few weeks. Its state must
survive every hop: visit counts (emails keyed by iteration are not mistaken for repeats),
events already seen (a re-delivered event id still counts once), milestone counts (two of
three events before the hops, the third after), the timeline.
On the time-skipping server: twelve weeks pass in seconds.
"""

from __future__ import annotations

from datetime import timedelta

from tests.helpers.harness import records, running, seed_customer, write_project
from workflows.playbook import PlaybookWorkflow

LOOPING = """\
playbook: looping
name: Weekly check-in loop
trigger: {manual: true}
steps:
  - id: check_in
    email:
      to: contact.role == "admin"
      subject: "Weekly check-in {{ customer.attributes.loops | default(0) + 1 }}"
      body: >
        <p>Week {{ customer.attributes.loops | default(0) + 1 }}.</p>
        <p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
      send_window: anytime
  - id: tick
    update:
      set: {loops: "{{ customer.attributes.loops | default(0) + 1 }}"}
  - id: pause
    wait: {for: 7d}
  - id: invited
    wait_for: {milestone: team_invited, timeout: 1h}
  - id: again
    branch:
      cases:
        - {if: customer.attributes.loops < 12, goto: check_in}
      otherwise: done
  - id: done
    end: {outcome: looped}
"""
ADA = "ada@acme.example"


async def test_loop_continues_as_new_several_times_with_state_intact(
    temporal_env, sessions, task_queue, tmp_path, figures
):
    plan = write_project(tmp_path / "project", {"looping": LOOPING}).plan("looping")
    customer = f"loop-{task_queue}"
    seed_customer(sessions, customer)
    async with running(temporal_env, sessions, task_queue, customer_id=customer) as h:
        handle = await h.start(plan, continue_as_new_after_events=60)
        # team_invited needs three user.invited events: two now, the third after two hops.
        first = await h.event(handle, "user.invited", {"email": "x@acme.example"})
        await h.event(handle, "user.invited", {"email": "y@acme.example"})

        async def hopped_twice():
            status = await h.status(handle)
            return status if len(records(status, "continue_as_new")) >= 2 else None

        await h.until(hopped_twice, step=timedelta(days=1), limit=timedelta(days=120))
        # The first event again (a retried delivery): seen before the hops, so ignored.
        await handle.signal(PlaybookWorkflow.event, first)
        status = await h.settle(handle)
        assert "team_invited" not in status.milestones, "a re-delivered event counted twice"
        await h.event(handle, "user.invited", {"email": "z@acme.example"})
        status = await h.settle(handle)
        assert "team_invited" in status.milestones, "counts from before the hops were lost"
        result = await h.result(handle, timeout=60)

    assert result.outcome == "looped"
    hops = records(result, "continue_as_new")
    assert len(hops) >= 3, [r.detail for r in hops]
    # One check-in per week, each its own outbox row, none skipped as "already sent".
    rows = h.outbox("check_in")
    assert [r.contact_email for r in rows] == [ADA] * 12
    assert len({r.idempotency_key for r in rows}) == 12
    assert sorted(r.subject for r in rows) == sorted(f"Weekly check-in {n}" for n in range(1, 13))
    assert h.customer(customer).attributes["loops"] == 12
    assert len([r for r in records(result, "event") if r.detail == "user.invited"]) == 3
    assert len([r for r in records(result, "milestone") if "reached" in r.detail]) >= 1
    assert len(records(result, "start")) == 1
    figures.update(continue_as_new=len(hops), loops=12, state_lost=0)
