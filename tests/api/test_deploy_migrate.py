"""`playbook deploy --migrate` on a real Temporal server: a waiting enrollment moves to the
deployed version keeping its deadline; a dry run and a bad mapping move nothing."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.testing import WorkflowEnvironment

from engine.client.deployment import deploy_working_copy
from engine.client.enrollment import enroll
from engine.client.playbook import EnrollmentHandle
from engine.messages import EnrollmentSnapshot
from engine.store import deployments
from tests.api.test_api_deploy import cli, settings_for, worker_for
from tests.helpers.harness import seed_customer, write_project
from tests.helpers.polling import eventually

HOLD = """\
playbook: hold
name: Hold on
trigger: {{on_event: account.ready}}
steps:
  - id: hold
    wait_for: {{event: go, timeout: {timeout}, on_timeout: done}}
  - id: done
    end: {{outcome: done}}
"""


async def test_deploy_migrate_moves_a_waiting_enrollment_and_refuses_a_bad_mapping(
    local_temporal: WorkflowEnvironment,
    db_url: str,
    sessions: sessionmaker[Session],
    tmp_path: Path,
) -> None:
    settings = settings_for(local_temporal, db_url, tmp_path / "home")
    root = tmp_path / "playbooks"
    v1 = write_project(root, {"hold": HOLD.format(timeout="10d")})
    deploy_working_copy(sessions, v1, by="test")
    seed_customer(sessions, "waiter", segment="smb")
    client = local_temporal.client
    async with worker_for(client, settings):
        wid = await enroll(
            client, v1.plans["hold"], "waiter", task_queue=settings.temporal_task_queue
        )
        handle = EnrollmentHandle.get(client, wid)

        async def waiting(version: str) -> EnrollmentSnapshot | None:
            status = await handle.status()
            ready = status.version == version and status.waiting_until is not None
            return status if ready else None

        before = await eventually(lambda: waiting(v1.plans["hold"].version))
        v2 = write_project(root, {"hold": HOLD.format(timeout="2d")})

        dry = await cli(settings, "deploy", "hold", "--root", str(root), "--migrate", "--dry-run")
        assert dry.exit_code == 0, dry.output
        assert "would migrate" in dry.stdout and "nothing was deployed" in dry.output
        bad = await cli(
            settings, "deploy", "hold", "--root", str(root), "--migrate", "--map", "hold=nowhere"
        )
        assert bad.exit_code == 1 and "no step 'nowhere'" in bad.output
        with sessions() as session:
            assert deployments.deployed_plan(session, "hold") == v1.plans["hold"]
        assert (await handle.status()).version == v1.plans["hold"].version

        done = await cli(settings, "deploy", "hold", "--root", str(root), "--migrate", "-m", "2d")
        assert done.exit_code == 0, done.output
        assert "1 migrated, 0 stayed, 0 refused" in done.output
        after = await eventually(lambda: waiting(v2.plans["hold"].version))
        assert after.current_step == "hold"
        assert after.waiting_until == before.waiting_until  # the 10-day deadline is kept
        again = await cli(settings, "deploy", "hold", "--root", str(root), "--migrate", "--dry-run")
        assert "already on this version" in again.stdout
        listed = await cli(settings, "history", "hold", "--format", "json")
        assert json.loads(listed.stdout)[0]["message"] == "2d"
