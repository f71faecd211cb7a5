"""JSON Schema export of the playbook language, for editors (yaml-language-server) and CI."""

from __future__ import annotations

from typing import Any

from engine.language.health import Scorecard
from engine.language.policy import PolicyFile
from engine.language.schema import MilestoneFile, Playbook

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file, as the loader accepts it."""
    schema = Playbook.model_json_schema(by_alias=True, mode="validation")
    _end_step_as_loaded(schema["$defs"]["EndStep"])
    return {"$schema": SCHEMA_DIALECT, "$id": "playbook.schema.json", **schema}


def _end_step_as_loaded(end_step: dict[str, Any]) -> None:
    """The model defaults ``end``, but the loader only picks EndStep when the key is there,
    and accepts a bare ``end:`` (null). Without this, ``{id: x}`` (a step with no action)
    would pass the schema and ``end:`` alone would fail it."""
    end = end_step["properties"]["end"]
    end_step["properties"]["end"] = {
        "anyOf": [end, {"type": "null"}],
        "description": "End the enrollment here; 'end:' alone ends it as 'completed'.",
    }
    end_step["required"] = [*end_step.get("required", []), "end"]


def milestones_schema() -> dict[str, Any]:
    """The JSON Schema of ``milestones.yaml``."""
    schema = MilestoneFile.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": "milestones.schema.json", **schema}


def policies_schema() -> dict[str, Any]:
    """The JSON Schema of ``policies.yaml`` (the delivery policy)."""
    schema = PolicyFile.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": "policies.schema.json", **schema}


def health_schema() -> dict[str, Any]:
    """The JSON Schema of ``health.yaml`` (the health scorecard)."""
    schema = Scorecard.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": "health.schema.json", **schema}
