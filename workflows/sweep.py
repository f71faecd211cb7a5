"""`TriggerSweepWorkflow`: run by a Temporal Schedule, enrolls customers whose date or
schedule trigger is due. The work is one activity; enrollment IDs carry the cycle, so a
retried or overlapping sweep cannot enroll anyone twice. The activity heartbeats each page
of customers it has swept, so a dead worker is noticed within `SWEEP_HEARTBEAT` and the
retry resumes after the last page (sweeps started before that patch have no heartbeat
timeout, as their histories recorded)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.messages import SWEEP_WORKFLOW_NAME, ActivityName, SweepInput, SweepResult

# A page of customers takes well under this; a worker silent for longer is taken for dead.
SWEEP_HEARTBEAT = timedelta(minutes=2)


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
            heartbeat_timeout=SWEEP_HEARTBEAT if workflow.patched("sweep-heartbeat") else None,
        )
        return result
