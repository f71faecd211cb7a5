"""The `sweep_triggers` activity: enroll the customers whose date/schedule cycle is due,
in the playbook's deployed version (read at every sweep, so a deploy or a rollback takes
effect on the next one).

It heartbeats the last customer id of every page it has swept; a retried attempt (the
worker died, or the heartbeat timed out) resumes after that id instead of starting over.
Starting over would enroll nobody twice (the cycle is in the enrollment ID), only cost
the pages again."""

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
        details = activity.info().heartbeat_details
        after = str(details[0]) if details else None
        started = await sweep(
            self.sessions,
            self.client,
            plan,
            self.task_queue,
            datetime.now(UTC),
            self.use_search_attributes,
            after=after,
            on_page=activity.heartbeat,
        )
        activity.logger.info(
            "sweep of %s enrolled %d customers%s",
            plan.playbook,
            len(started),
            f" (resumed after {after})" if after else "",
        )
        return SweepResult(enrolled=started)
