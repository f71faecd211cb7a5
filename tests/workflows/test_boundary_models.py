"""Every model a workflow decodes is complete when its module is imported.

Temporal builds a new payload converter for each workflow instance, so the pydantic
converter's cache of `TypeAdapter`s starts empty in every one of them. For a complete model
`TypeAdapter(Model)` reuses the model's own validator; for a model pydantic could not finish
at class definition (a field annotated with a class defined further down the module), it
builds a whole new schema and validator instead: about 145 KB of worker memory per cached
workflow for `EnrollmentInput`, the plan's whole tree (`bench/RESULTS.md`, "The memory
regression found").
"""

from __future__ import annotations

import json
import subprocess
import sys

# Run in a fresh interpreter: pydantic finishes an incomplete model the first time it
# validates one, so a test that ran earlier in this process could hide the defect.
CHECK = """
import inspect, json
from pydantic import BaseModel, TypeAdapter
import engine.language.milestones, engine.language.plan, engine.messages
models = [
    value
    for module in (engine.messages, engine.language.plan, engine.language.milestones)
    for value in vars(module).values()
    if inspect.isclass(value) and issubclass(value, BaseModel)
    and value.__module__ == module.__name__
]
print(json.dumps({
    "models": [model.__name__ for model in models],
    "rebuilt": [
        model.__name__ for model in models
        if TypeAdapter(model).validator is not model.__pydantic_validator__
    ],
}))
"""


def test_a_type_adapter_reuses_each_boundary_models_own_validator() -> None:
    run = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    found = json.loads(run.stdout)
    assert {"EnrollmentInput", "InterpreterState", "CompiledPlan"} <= set(found["models"])
    assert found["rebuilt"] == [], "defined before a model their fields use"
