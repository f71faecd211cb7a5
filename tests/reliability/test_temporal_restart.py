"""Fault 3: the Temporal dev server restarts mid-run (persisted to a database file).

Enrollments wait on timers and on a milestone when the server goes down; it comes back on the
same port with the same database file; the worker process is restarted with it. Timers that
were due fire, and a milestone posted after the restart moves the waiting enrollments on.
"""

from __future__ import annotations

import asyncio
import socket
import uuid

from engine.client.routing import EventRouter
from tests.helpers.harness import write_project
from tests.helpers.reliability import results, seed_customers, start_all, waiting_for
from tests.helpers.temporal import start_dev_server

TIMER_FIRST = """\
playbook: timer_first
name: Waits on a timer, then on a milestone
trigger: {manual: true}
steps:
  - id: pause
    wait: {for: 8s}
  - id: await_integration
    wait_for: {milestone: integration_connected, timeout: 1h}
  - id: done
    end: {outcome: connected}
"""
MILESTONE_FIRST = """\
playbook: milestone_first
name: Waits on a milestone
trigger: {manual: true}
steps:
  - id: await_integration
    wait_for: {milestone: integration_connected, timeout: 1h}
  - id: done
    end: {outcome: connected}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_enrollments_resume_after_a_temporal_restart(
    sessions, db_url, worker_process, task_queue, tmp_path, figures
):
    project = write_project(
        tmp_path / "project", {"timer_first": TIMER_FIRST, "milestone_first": MILESTONE_FIRST}
    )
    customers = seed_customers(sessions, 5)
    port, db_file = free_port(), str(tmp_path / "temporal.db")
    server = await start_dev_server(ui=False, port=port, dev_server_database_filename=db_file)
    worker = worker_process(
        temporal_address=f"127.0.0.1:{port}", task_queue=task_queue, database_url=db_url
    )
    try:
        worker.start()
        timers = await start_all(server.client, project.plan("timer_first"), customers, task_queue)
        waits = await start_all(
            server.client, project.plan("milestone_first"), customers, task_queue
        )
        for handle in timers:
            await waiting_for(handle, "time")
        for handle in waits:
            await waiting_for(handle, "milestone integration_connected")

        worker.kill()
        await server.shutdown()
        await asyncio.sleep(2)
        server = await start_dev_server(ui=False, port=port, dev_server_database_filename=db_file)
        worker.start()

        # The timers fire after the restart: those enrollments reach the milestone wait too.
        for handle in timers:
            handle = server.client.get_workflow_handle(handle.id)
            await waiting_for(handle, "milestone integration_connected", seconds=60)
        router = EventRouter(
            sessions,
            server.client,
            project.plans,
            project.milestones,
            task_queue,
            use_search_attributes=False,
        )
        for customer in customers:
            routed = await router.handle(
                uuid.uuid4().hex, customer, "integration.connected", None, {}
            )
            assert len(routed.signalled) == 2, routed
        handles = [
            server.client.get_workflow_handle(h.id, result_type=h._result_type)
            for h in timers + waits
        ]
        outcomes = await results(handles, timeout=60)
        assert {r.outcome for r in outcomes} == {"connected"}
    finally:
        worker.stop()
        await server.shutdown()
    figures.update(server_restarts=1, enrollments_resumed=len(outcomes), lost=0)
