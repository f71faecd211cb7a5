"""`migrate`: a running enrollment continues in a new version of its playbook (issue 16)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from engine.client.playbook import EnrollmentHandle
from engine.language.plan import CompiledPlan
from engine.messages import MigrateRequest
from tests.helpers.harness import records
from tests.helpers.onboarding import AWAIT_INTEGRATION


def edited(plan: CompiledPlan, step_id: str, **changes: object) -> CompiledPlan:
    """``plan`` with one step changed (and a new version)."""
    steps = [s.model_copy(update=changes) if s.id == step_id else s for s in plan.steps]
    return plan.model_copy(update={"steps": steps}).with_version()


def with_wait_timeout(plan: CompiledPlan, seconds: int) -> CompiledPlan:
    step = plan.step("await_integration")
    assert step.wait_for is not None
    wait_for = step.wait_for.model_copy(update={"timeout_seconds": seconds})
    return edited(plan, "await_integration", wait_for=wait_for)


async def test_a_waiting_enrollment_moves_to_the_new_version_keeping_its_deadline(
    onboarding, project
):
    async with onboarding(segment="smb") as (h, handle):
        waiting = await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))
        deadline = waiting.waiting_until
        assert deadline is not None
        welcomes = len(h.outbox("welcome"))
        assert welcomes > 0
        old = waiting.version
        new = with_wait_timeout(project.plan("onboarding"), 3 * 86_400)
        await EnrollmentHandle(handle).migrate(MigrateRequest(plan=new, reason="test"))
        status = await h.until_status(
            handle,
            lambda s: s.version == new.version and s.waiting_for == AWAIT_INTEGRATION,
            step=timedelta(minutes=1),
            limit=timedelta(hours=1),
        )
        assert status.current_step == "await_integration"
        # The deadline of the old wait is kept, not restarted with the new 3-day timeout.
        assert status.waiting_until == deadline
        [moved] = records(status, "migrated", "await_integration")
        assert moved.data["from"] == old[:12] and moved.data["to"] == new.short_version
        assert len(h.outbox("welcome")) == welcomes  # nothing sent again
        assert records(status, "start")  # the history before the migration is kept


async def test_a_step_with_no_mapping_is_refused_and_nothing_moves(onboarding, project):
    async with onboarding(segment="smb") as (h, handle):
        await h.until_waiting(handle, AWAIT_INTEGRATION, step=timedelta(hours=2))
        plan = project.plan("onboarding")
        renamed = edited(plan, "await_integration", id="await_data")
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await EnrollmentHandle(handle).migrate(MigrateRequest(plan=renamed))
        assert "await_integration has no mapping" in str(refused.value.cause)
        status = await h.status(handle)
        assert status.version == plan.version and status.current_step == "await_integration"
        # Named explicitly, the mapping is accepted.
        await EnrollmentHandle(handle).migrate(
            MigrateRequest(plan=renamed, mapping={"await_integration": "await_data"})
        )
        status = await h.until_status(
            handle,
            lambda s: s.current_step == "await_data" and s.waiting_for is not None,
            step=timedelta(minutes=1),
            limit=timedelta(hours=1),
        )
        assert status.version == renamed.version
