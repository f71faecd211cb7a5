"""The `sweep_triggers` activity: enroll the customers whose date/schedule cycle is due,
in the playbook's deployed version (read at every sweep, so a deploy or a rollback takes
effect on the next one)."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity

from activities.base import EnrollingActivities
from engine.client.sweeps import sweep
from engine.messages import ActivityName, SweepInput, SweepResult
from engine.store import deployments


class SweepActivities(EnrollingActivities):
    @activity.defn(name=ActivityName.SWEEP_TRIGGERS)
    async def sweep_triggers(self, input: SweepInput) -> SweepResult:
        with self.sessions() as session:
            plan = deployments.deployed_plan(session, input.playbook)
        if plan is None:
            return SweepResult()
        started = await sweep(
            self.sessions,
            self.client,
            plan,
            self.task_queue,
            datetime.now(UTC),
            self.use_search_attributes,
        )
        activity.logger.info("sweep of %s enrolled %d customers", plan.playbook, len(started))
        return SweepResult(enrolled=started)
