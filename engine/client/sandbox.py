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

The sandbox also runs a small snippet of code, with `exec`, each time it steps into a workflow
instance: at every activation and, in temporalio 1.35 (the pinned version), several more
times per activation and per completion, to find the serialization context of their
payloads. `exec` of a string compiles it again each time: those compiles were about 7 % of a
benchmark worker's Python CPU (py-spy; bench/RESULTS.md, "The writer's turn and the
sandbox's compiles").
`CompiledOnceRunner` hands the sandbox each snippet compiled once per process; what runs,
and in which namespace, is unchanged.
"""

from __future__ import annotations

import functools
from types import CodeType
from typing import Any

from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions
from temporalio.worker.workflow_sandbox._runner import _Instance

PASSED_THROUGH = ("workflows.playbook", "workflows.interpreter")


@functools.lru_cache(maxsize=256)
def compiled_snippet(source: str) -> CodeType:
    """A sandbox snippet compiled, once per process per distinct snippet: there are a few
    per workflow class (the import of its module differs), so the cache stays small."""
    return compile(source, "<string>", "exec", dont_inherit=True)


class _CompiledOnceInstance(_Instance):
    """The SDK's sandboxed instance; `exec` gets each snippet as a compiled code object,
    which it runs exactly as it would the string (same globals, same locals)."""

    def _run_code(self, code: str | CodeType, **extra_globals: Any) -> None:
        if isinstance(code, str):
            code = compiled_snippet(code)
        super()._run_code(code, **extra_globals)  # type: ignore[arg-type]


class CompiledOnceRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances compile each of the sandbox's snippets once
    per process instead of at every call (see the module's docstring)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """A sandboxed instance, as the SDK's runner makes, with compiled snippets."""
        return _CompiledOnceInstance(det, self.runner_class, self.restrictions)


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox, with the playbook workflow's own modules passed through."""
    return CompiledOnceRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSED_THROUGH)
    )
