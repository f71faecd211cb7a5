"""Re-enrollment: each enrollment of a customer owns its emails and tasks.

A re-enrollment (``reenroll: always`` or a gap) reuses the workflow ID, so keys built from
the workflow ID made the second enrollment find the first one's outbox rows (emails reported
sent, never written) and its completed task (a ``wait: true`` task waited forever).
``reenroll: never`` holds from the store, even once Temporal has forgotten the workflow.
"""

from __future__ import annotations

from datetime import timedelta

from engine.client.playbook import EnrollmentHandle
from engine.client.routing import EventRouter
from engine.client.sweeps import sweep
from engine.messages import CancelRequest, EnrollmentResult
from engine.statuses import EnrollmentStatus, TaskStatus
from engine.store import repository
from tests.helpers.harness import running, seed_customer, write_project
from tests.workflows.test_email_delivery import ADA, CARL, accepted, real_mailer

EVERY_TIME = """\
playbook: every_time
name: Email and a task, every time
trigger: {manual: true}
reenroll: always
steps:
  - id: hello
    email:
      to: contact.role in ["admin", "champion"]
      subject: "Hello {{ contact.first_name }}"
      body: <p>Hi {{ contact.first_name }}. <a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
      send_window: anytime
  - id: call
    task:
      title: "Call {{ customer.name }}"
      wait: true
  - id: done
    end: {outcome: called}
"""

ONCE = """\
playbook: once
name: Once per customer
trigger: {on_event: account.activated}
reenroll: never
steps:
  - id: done
    end: {outcome: welcomed}
"""


async def test_three_enrollments_each_send_their_email_and_wait_for_their_own_task(
    temporal_env, sessions, task_queue, tmp_path, customer_id, sendgrid
):
    plan = write_project(tmp_path / "project", {"every_time": EVERY_TIME}).plan("every_time")
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, real_mailer(sendgrid), customer_id) as h:
        for n in range(1, 4):
            handle = await h.start(plan)

            def open_task() -> list:
                return [t for t in h.tasks("call") if t.status == TaskStatus.OPEN]

            [task] = await h.until(open_task, step=timedelta(minutes=10), limit=timedelta(days=2))
            row = h.enrollment(handle.id)  # the projection shows this one, not the ended one
            assert row is not None and row.status == EnrollmentStatus.RUNNING
            assert row.ended_at is None and row.outcome is None
            await h.complete(handle, task.id, "done")
            result = await h.result(handle)
            assert result.outcome == "called", n
            assert h.stored_end(handle.id) == (EnrollmentStatus.COMPLETED, "called")
            await temporal_env.sleep(timedelta(days=120))

    # Three enrollments under one workflow ID: each emailed each contact once ...
    for contact in (ADA, CARL):
        assert len(accepted(sendgrid, handle.id, "hello", contact)) == 3, contact
    rows = h.outbox("hello")
    assert len(rows) == 6
    assert {r.status for r in rows} == {"sent"}
    assert len({r.provider_message_id for r in rows}) == 6
    # ... and created its own task, which it waited for.
    tasks = h.tasks("call")
    assert len(tasks) == 3
    assert {t.status for t in tasks} == {TaskStatus.COMPLETED}
    assert {t.enrollment_id for t in tasks} == {handle.id}


async def test_three_enrollments_over_a_year_leave_three_rows_with_their_own_outcomes(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    """The store keeps one row per run: a re-enrollment no longer overwrites the last one."""
    plan = write_project(tmp_path / "project", {"every_time": EVERY_TIME}).plan("every_time")
    seed_customer(sessions, customer_id)
    ends = []
    async with running(temporal_env, sessions, task_queue, None, customer_id) as h:
        for cancel in (False, True, False):
            handle = await h.start(plan)

            def open_task() -> list:
                return [t for t in h.tasks("call") if t.status == TaskStatus.OPEN]

            [task] = await h.until(open_task, step=timedelta(minutes=10), limit=timedelta(days=2))
            if cancel:
                await EnrollmentHandle.get(temporal_env.client, handle.id).cancel(
                    CancelRequest(reason="customer asked")
                )
            else:
                await h.complete(handle, task.id, "done")
            ends.append((await h.result(handle)).outcome)
            await temporal_env.sleep(timedelta(days=120))

    assert ends == ["called", "cancelled", "called"]
    with sessions() as session:
        rows = repository.list_enrollments(session, customer_id=customer_id, limit=10)
    assert [r.workflow_id for r in rows] == [handle.id] * 3
    assert len({r.enrollment_key for r in rows}) == 3
    # Newest first, each run with its own outcome, start and end.
    assert [(r.status, r.outcome) for r in rows] == [
        (EnrollmentStatus.COMPLETED, "called"),
        (EnrollmentStatus.CANCELLED, "cancelled"),
        (EnrollmentStatus.COMPLETED, "called"),
    ]
    assert all(r.ended_at is not None and r.ended_at >= r.started_at for r in rows)
    assert rows[0].started_at - rows[2].started_at >= timedelta(days=240)


MONTHLY = """\
playbook: monthly
name: Once a month, again and again
trigger: {schedule: {every: month}}
reenroll: always
steps:
  - id: done
    end: {outcome: checked_in}
"""


async def test_a_schedule_cycle_enrolls_once_even_with_reenroll_always(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    """The month stays due after its run has ended: the next sweep must not start the
    same month again (it did: reenroll: always let the cycle's ID be reused)."""
    plan = write_project(tmp_path / "project", {"monthly": MONTHLY}).plan("monthly")
    seed_customer(sessions, customer_id)
    async with running(temporal_env, sessions, task_queue, None, customer_id) as h:
        now = await h.now()
        [first] = await sweep(sessions, temporal_env.client, plan, task_queue, now, False)
        handle = temporal_env.client.get_workflow_handle(first, result_type=EnrollmentResult)
        assert (await handle.result()).outcome == "checked_in"
        again = await sweep(sessions, temporal_env.client, plan, task_queue, now, False)
        assert again == []
        # The next month is a new cycle: enrolled.
        nxt = now + timedelta(days=32)
        [second] = await sweep(sessions, temporal_env.client, plan, task_queue, nxt, False)
        assert second != first
        # Its row is written by the run itself: wait for the run before reading the store.
        handle = temporal_env.client.get_workflow_handle(second, result_type=EnrollmentResult)
        assert (await handle.result()).outcome == "checked_in"
    with sessions() as session:
        rows = repository.list_enrollments(session, customer_id=customer_id, limit=10)
    assert len(rows) == 2 and len({r.cycle_key for r in rows}) == 2


async def test_reenroll_never_holds_after_temporal_forgot_the_first_enrollment(
    temporal_env, sessions, task_queue, tmp_path, customer_id
):
    project = write_project(tmp_path / "project", {"once": ONCE})
    plan = project.plan("once")
    seed_customer(sessions, customer_id)
    # The store remembers an ended enrollment whose workflow Temporal no longer has (its
    # retention ended): only the projection row is left.
    with sessions.begin() as session:
        repository.upsert_enrollment(
            session,
            workflow_id=f"once/{customer_id}",
            playbook_id=plan.playbook,
            version=plan.version,
            customer_id=customer_id,
            status=EnrollmentStatus.COMPLETED,
            outcome="welcomed",
        )
    router = EventRouter(
        sessions,
        temporal_env.client,
        {plan.playbook: plan},
        project.milestones,
        task_queue,
        use_search_attributes=False,
    )
    routed = await router.handle("ev-1", customer_id, "account.activated", None, {})
    assert routed.status == "accepted"
    assert routed.enrolled == []
    assert any("already enrolled" in note for note in routed.notes), routed.notes
