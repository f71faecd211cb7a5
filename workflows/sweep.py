"""`TriggerSweepWorkflow`: run by a Temporal Schedule, enrolls customers whose date or
schedule trigger is due. The work is one activity; enrollment IDs carry the cycle, so a
retried or overlapping sweep cannot enroll anyone twice."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.messages import SWEEP_WORKFLOW_NAME, ActivityName, SweepInput, SweepResult


@workflow.defn(name=SWEEP_WORKFLOW_NAME)
class TriggerSweepWorkflow:
    @workflow.run
    async def run(self, input: SweepInput) -> SweepResult:
        result: SweepResult = await workflow.execute_activity(
            ActivityName.SWEEP_TRIGGERS,
            input,
            result_type=SweepResult,
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
        return result
