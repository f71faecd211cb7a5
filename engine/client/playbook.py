"""Every call to `PlaybookWorkflow`, through the workflow's typed methods.

Callers never name a signal, query or update by string: `EnrollmentHandle` wraps the
workflow handle of one enrollment and offers one method per message, each passing the
workflow method itself (``handle.signal(PlaybookWorkflow.event, ...)``), as
temporalio/samples-python does in ``message_passing/``. The message names and types then
come from the workflow's definition, so a rename or a changed argument is a type error here,
not a silent mismatch at run time.

Errors are Temporal's own (`RPCError`, `WorkflowQueryFailedError`,
`WorkflowUpdateFailedError`); what they mean to a user is decided by the caller.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from engine.messages import (
    CancelRequest,
    CustomerChanged,
    EnrollmentInput,
    EnrollmentResult,
    EnrollmentSnapshot,
    EventSignal,
    MigrateRequest,
    SkipRequest,
    TaskCompletion,
    TaskReopen,
)
from workflows.playbook import PlaybookWorkflow


@dataclass(frozen=True)
class EnrollmentHandle:
    """One enrollment's workflow, with `PlaybookWorkflow`'s messages as typed methods."""

    workflow: WorkflowHandle[PlaybookWorkflow, EnrollmentResult]

    @classmethod
    def get(cls, client: Client, enrollment_id: str) -> EnrollmentHandle:
        """The handle of the enrollment (the workflow) with this id; no call is made."""
        return cls(client.get_workflow_handle_for(PlaybookWorkflow.run, enrollment_id))

    @property
    def id(self) -> str:
        return self.workflow.id

    # -- signals ---------------------------------------------------------------------------
    async def send_event(self, event: EventSignal) -> None:
        """Signal `event`: a lifecycle or usage event; the same id counts once."""
        await self.workflow.signal(PlaybookWorkflow.event, event)

    async def task_completed(self, completion: TaskCompletion) -> None:
        """Signal `task_completed`: a task this enrollment created was closed."""
        await self.workflow.signal(PlaybookWorkflow.task_completed, completion)

    async def customer_changed(self, change: CustomerChanged) -> None:
        """Signal `customer_changed`: the customer's data changed; waits re-evaluate dates."""
        await self.workflow.signal(PlaybookWorkflow.customer_changed, change)

    # -- query -----------------------------------------------------------------------------
    async def status(self) -> EnrollmentSnapshot:
        """Query `status`: the current step, what it waits for and until when."""
        return await self.workflow.query(PlaybookWorkflow.status)

    # -- updates ---------------------------------------------------------------------------
    async def pause(self) -> EnrollmentSnapshot:
        return await self.workflow.execute_update(PlaybookWorkflow.pause)

    async def resume(self) -> EnrollmentSnapshot:
        return await self.workflow.execute_update(PlaybookWorkflow.resume)

    async def skip_to_step(self, request: SkipRequest) -> EnrollmentSnapshot:
        return await self.workflow.execute_update(PlaybookWorkflow.skip_to_step, request)

    async def cancel(self, request: CancelRequest) -> EnrollmentSnapshot:
        return await self.workflow.execute_update(PlaybookWorkflow.cancel, request)

    async def migrate(self, request: MigrateRequest) -> EnrollmentSnapshot:
        """Update `migrate`: continue in ``request.plan``; refused (`WorkflowUpdateFailedError`)
        when the current step has no mapping."""
        return await self.workflow.execute_update(PlaybookWorkflow.migrate, request)

    async def reopen_task(self, request: TaskReopen) -> None:
        """Update `reopen_task`: take back a completion still in its undo window."""
        await self.workflow.execute_update(PlaybookWorkflow.reopen_task, request)


async def start_enrollment(
    client: Client,
    payload: EnrollmentInput,
    *,
    id: str,
    task_queue: str,
    id_reuse_policy: WorkflowIDReusePolicy = WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    id_conflict_policy: WorkflowIDConflictPolicy = WorkflowIDConflictPolicy.UNSPECIFIED,
    search_attributes: TypedSearchAttributes | None = None,
) -> EnrollmentHandle:
    """Start `PlaybookWorkflow` with ``payload`` under workflow id ``id``.

    Raises `WorkflowAlreadyStartedError` when the id policies refuse the start.
    """
    handle = await client.start_workflow(
        PlaybookWorkflow.run,
        payload,
        id=id,
        task_queue=task_queue,
        id_reuse_policy=id_reuse_policy,
        id_conflict_policy=id_conflict_policy,
        search_attributes=search_attributes,
    )
    return EnrollmentHandle(handle)
