"""`HealthRecomputeWorkflow`: run daily by a Temporal Schedule, recomputes every customer's
health score (so windows move on without new events) and starts the ``on_change`` playbooks
the new scores make true. The work is one activity (`activities/health.py`)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from engine.messages import (
        HEALTH_WORKFLOW_NAME,
        ActivityName,
        HealthRecomputeInput,
        HealthRecomputeResult,
    )


@workflow.defn(name=HEALTH_WORKFLOW_NAME)
class HealthRecomputeWorkflow:
    @workflow.run
    async def run(self, input: HealthRecomputeInput) -> HealthRecomputeResult:
        result: HealthRecomputeResult = await workflow.execute_activity(
            ActivityName.RECOMPUTE_HEALTH,
            input,
            result_type=HealthRecomputeResult,
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=5)),
        )
        return result
