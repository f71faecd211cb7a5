"""Long or looping playbooks continue as new and carry their state into each new run."""

from __future__ import annotations

from datetime import timedelta

from engine.messages import EnrollmentSnapshot
from tests.helpers.harness import records, running, seed_customer, write_project

VISITS = 12

LOOPING = f"""\
playbook: looping
name: A daily loop
trigger: {{manual: true}}
steps:
  - id: tick
    description: A day's wait (none once the team is invited).
    wait_for:
      milestone: team_invited
      timeout: 1d
      on_timeout: count
  - id: count
    update:
      set:
        visits: "{{{{ (customer.attributes.visits | default(0)) + 1 }}}}"
  - id: report
    email:
      to: contact.role == "admin"
      subject: "Day {{{{ customer.attributes.visits }}}}"
      body: "<p>Visit {{{{ customer.attributes.visits }}}}</p>"
      send_window: anytime
  - id: again
    branch:
      cases:
        - if: customer.attributes.visits < {VISITS}
          goto: tick
      otherwise: done
  - id: done
    end: {{outcome: looped}}
"""


async def test_a_looping_playbook_continues_as_new_with_its_state_intact(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    plan = write_project(tmp_path / "project", {"looping": LOOPING}).plan("looping")
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, customer_id=customer_id) as h:
        handle = await h.start(plan, continue_as_new_after_events=60)
        # Run 1: two of the three invitations team_invited needs.
        first = await h.event(handle, "user.invited", {"email": "x@acme.example"})
        await h.event(handle, "user.invited", {"email": "y@acme.example"})

        async def in_a_later_run() -> EnrollmentSnapshot | None:
            status = await h.status(handle)
            return status if records(status, "continue_as_new") else None

        await h.until(in_a_later_run, step=timedelta(hours=12))
        # A later run still knows the first event (so its repeat is ignored) and the count.
        await h.event(handle, "user.invited", {"email": "x@acme.example"}, event_id=first.id)
        status = await h.settle(handle)
        assert "team_invited" not in status.milestones
        await h.event(handle, "user.invited", {"email": "z@acme.example"})
        status = await h.settle(handle)
        assert "team_invited" in status.milestones

        result = await h.result(handle)

    assert result.outcome == "looped"
    runs = records(result, "continue_as_new")
    assert len(runs) >= 2
    assert [r.detail for r in runs] == [f"run {n}" for n in range(2, len(runs) + 2)]
    assert h.customer().attributes["visits"] == VISITS
    assert len(records(result, "update", "count")) == VISITS
    # Each visit's email has its own idempotency key (enrollment, step, visit): had the
    # visit counter been lost across runs, later visits would be taken for repeats.
    reports = h.outbox("report")
    assert [m.subject for m in reports] == [f"Day {n}" for n in range(1, VISITS + 1)]
    assert len({m.idempotency_key for m in reports}) == VISITS
    # The run that ended is not the first: it was started by a continue-as-new.
    last_run = (await handle.fetch_history()).events[0]
    started = last_run.workflow_execution_started_event_attributes
    assert started.continued_execution_run_id
    assert started.first_execution_run_id != started.original_execution_run_id
