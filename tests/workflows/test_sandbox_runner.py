"""The playbook workflow's sandbox compiles its snippets once (`engine/client/sandbox.py`).

`CompiledOnceRunner` reaches into the SDK's private sandbox instance: these tests fail if an
SDK upgrade changes what it overrides, and show that a compiled snippet runs as the string
did (the rest of the suite runs every workflow through it, replays included).
"""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter, WorkflowSerializationContext
from temporalio.worker import WorkflowInstanceDetails
from temporalio.worker.workflow_sandbox import (
    RestrictedWorkflowAccessError,
    SandboxedWorkflowRunner,
)
from temporalio.worker.workflow_sandbox._runner import _fake_info, _Instance

from engine.client.sandbox import CompiledOnceRunner, compiled_snippet, workflow_runner


@workflow.defn
class Tiny:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(timedelta(seconds=1))
        return "done"


def _details() -> WorkflowInstanceDetails:
    """What the SDK's runner passes to check a workflow class (`prepare_workflow`)."""
    defn = workflow._Definition.must_from_class(Tiny)
    return WorkflowInstanceDetails(
        payload_converter_factory=DataConverter.default._new_payload_converter,
        failure_converter_class=DataConverter.default.failure_converter_class,
        interceptor_classes=[],
        defn=defn,
        info=_fake_info,
        randomness_seed=-1,
        extern_functions={},
        disable_eager_activity_execution=False,
        worker_level_failure_exception_types=[],
        patch_activation_callback=None,
        last_completion_result=Payloads(),
        last_failure=Failure(),
    )


def test_the_overridden_sdk_method_is_still_there():
    """`_Instance._run_code(code, **extra_globals)` is what the runner overrides; an SDK that
    renamed it would leave the override unused, silently."""
    parameters = list(inspect.signature(_Instance._run_code).parameters)
    assert parameters == ["self", "code", "extra_globals"]
    assert "exec(code," in inspect.getsource(_Instance._run_code)


def test_the_playbook_workflow_runs_in_the_compiled_once_sandbox():
    runner = workflow_runner()
    assert isinstance(runner, CompiledOnceRunner)
    assert isinstance(runner, SandboxedWorkflowRunner)  # still the SDK's sandbox, restrictions kept


async def test_each_snippet_is_compiled_once_and_answers_as_the_sdk_does():
    runner = workflow_runner()
    ours = runner.create_instance(_details())
    theirs = SandboxedWorkflowRunner(restrictions=runner.restrictions).create_instance(_details())
    before = compiled_snippet.cache_info()
    answers = [ours.get_serialization_context(None) for _ in range(50)]
    after = compiled_snippet.cache_info()
    assert after.misses - before.misses <= 1  # compiled at most once, for the first call
    assert after.hits - before.hits >= 49
    expected = theirs.get_serialization_context(None)
    assert isinstance(expected, WorkflowSerializationContext)
    assert answers == [expected] * 50


async def test_a_snippet_still_runs_inside_the_sandbox():
    """The snippet's code runs with the sandbox's restrictions applied, as before: a
    restricted call made from it is refused."""
    instance = workflow_runner().create_instance(_details())
    assert isinstance(instance, _Instance)
    instance.importer.restriction_context.is_runtime = True  # as during an activation
    try:
        with pytest.raises(RestrictedWorkflowAccessError, match=r"os\.getcwd"):
            instance._run_code(
                "with __temporal_importer.applied():\n  import os\n  os.getcwd()\n",
                __temporal_importer=instance.importer,
            )
    finally:
        instance.importer.restriction_context.is_runtime = False
