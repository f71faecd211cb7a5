"""The workflow sandbox of every worker that runs `PlaybookWorkflow`.

Temporal's sandbox imports a workflow's module again for every workflow instance, and a
worker keeps up to 1,000 instances cached. `workflows/playbook.py` is only the workflow's
shell, but its class, with ten handlers and their type hints, was still built again for each
instance: part of the worker's CPU per enrollment, and memory per cached enrollment. Passed
through, the shell and the interpreter it delegates to (`workflows/interpreter.py`) are
loaded once per worker process. The sandbox still isolates every other module a workflow
imports; `tests/workflows/test_interpreter_module.py` checks statically that neither module
calls a clock, random numbers or I/O (docs/architecture.md, "Why the interpreter is passed
through").
"""

from __future__ import annotations

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

PASSED_THROUGH = ("workflows.playbook", "workflows.interpreter")


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with the playbook workflow's own modules passed through."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    )
