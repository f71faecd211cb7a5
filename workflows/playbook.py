"""`PlaybookWorkflow`: one workflow type that interprets any compiled playbook plan.

Each enrollment (one customer in one playbook, plus a cycle key for recurring playbooks)
is one workflow execution whose ID is the enrollment ID. The plan travels in the input, so
editing YAML never touches a running enrollment. Everything with an effect, and every
decision over customer data, goes through activities.

This module is only the workflow's shell: its name, its input, and the signals, updates
and query it answers, each delegating to an `Interpreter` (`workflows/interpreter.py`),
which holds the state and the logic. Temporal's sandbox would import a workflow module
again for every workflow instance; every worker passes this one and the interpreter
through (`engine/client/sandbox.py`), so their code and this class are built once per
worker process rather than once per cached workflow. Neither module imports jinja2, yaml
or database code.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from engine.messages import (
        WORKFLOW_NAME,
        CancelRequest,
        CustomerChanged,
        EnrollmentInput,
        EnrollmentResult,
        EnrollmentSnapshot,
        EventSignal,
        MigrateRequest,
        QueryName,
        SignalName,
        SkipRequest,
        TaskCompletion,
        TaskReopen,
        UpdateName,
    )
    from workflows.interpreter import Interpreter


@workflow.defn(name=WORKFLOW_NAME)
class PlaybookWorkflow:
    """Interprets a `CompiledPlan` for one customer, from its first step to an outcome."""

    @workflow.init
    def __init__(self, input: EnrollmentInput) -> None:
        self.interpreter = Interpreter(input)

    @workflow.run
    async def run(self, input: EnrollmentInput) -> EnrollmentResult:
        """Walk the plan from its first step (or the carried state) to an outcome."""
        return await self.interpreter.run()

    # -- signals ---------------------------------------------------------------------------
    @workflow.signal(name=SignalName.EVENT)
    def event(self, event: EventSignal) -> None:
        """A lifecycle or usage event for this customer; the same id counts once."""
        self.interpreter.event(event)

    @workflow.signal(name=SignalName.TASK_COMPLETED)
    def task_completed(self, completion: TaskCompletion) -> None:
        """A CSM completed a task this enrollment created."""
        self.interpreter.task_completed(completion)

    @workflow.signal(name=SignalName.CUSTOMER_CHANGED)
    def customer_changed(self, change: CustomerChanged) -> None:
        """The customer's data changed: a running `wait: until` follows a moved date."""
        self.interpreter.customer_changed(change)

    # -- updates and their validators ------------------------------------------------------
    @workflow.update(name=UpdateName.PAUSE)
    def pause(self) -> EnrollmentSnapshot:
        """Hold the enrollment before its next step (waits keep their deadlines)."""
        return self.interpreter.pause()

    @pause.validator
    def _validate_pause(self) -> None:
        self.interpreter.validate_pause()

    @workflow.update(name=UpdateName.RESUME)
    def resume(self) -> EnrollmentSnapshot:
        """Let a paused enrollment go on."""
        return self.interpreter.resume()

    @resume.validator
    def _validate_resume(self) -> None:
        self.interpreter.validate_resume()

    @workflow.update(name=UpdateName.SKIP_TO_STEP)
    def skip_to_step(self, request: SkipRequest) -> EnrollmentSnapshot:
        """Leave the current step (or wait) and continue at another step."""
        return self.interpreter.skip_to_step(request)

    @skip_to_step.validator
    def _validate_skip(self, request: SkipRequest) -> None:
        self.interpreter.validate_skip(request)

    @workflow.update(name=UpdateName.CANCEL)
    def cancel(self, request: CancelRequest) -> EnrollmentSnapshot:
        """Stop the enrollment now with outcome 'cancelled'."""
        return self.interpreter.cancel(request)

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self.interpreter.validate_cancel(request)

    @workflow.update(name=UpdateName.REOPEN_TASK)
    def reopen_task(self, request: TaskReopen) -> None:
        """Take back a task's completion the enrollment has not acted on yet (undo)."""
        self.interpreter.reopen_task(request)

    @reopen_task.validator
    def _validate_reopen_task(self, request: TaskReopen) -> None:
        self.interpreter.validate_reopen_task(request)

    @workflow.update(name=UpdateName.MIGRATE)
    def migrate(self, request: MigrateRequest) -> EnrollmentSnapshot:
        """Continue in another version of the playbook (`playbook deploy --migrate`)."""
        return self.interpreter.migrate(request)

    @migrate.validator
    def _validate_migrate(self, request: MigrateRequest) -> None:
        self.interpreter.validate_migrate(request)

    # -- query -----------------------------------------------------------------------------
    @workflow.query(name=QueryName.STATUS)
    def status(self) -> EnrollmentSnapshot:
        """Where the enrollment stands: current step, what it waits for and until when."""
        return self.interpreter.status()
