"""`TeamNotifyWorkflow`: run by the `team-notify` Schedule, tells team members about their
tasks (new, due today, escalated) on Slack and the webhook, and emails the daily digests.
The work is one activity; every delivery is keyed by task, event and channel (a digest by
member and local day), so a retried or repeated run sends nothing twice."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.messages import (
        TEAM_NOTIFY_WORKFLOW_NAME,
        ActivityName,
        TeamNotifyInput,
        TeamNotifyResult,
    )


@workflow.defn(name=TEAM_NOTIFY_WORKFLOW_NAME)
class TeamNotifyWorkflow:
    @workflow.run
    async def run(self, input: TeamNotifyInput) -> TeamNotifyResult:
        result: TeamNotifyResult = await workflow.execute_activity(
            ActivityName.NOTIFY_TEAM,
            input,
            result_type=TeamNotifyResult,
            start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=5),
        )
        return result
