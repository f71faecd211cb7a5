"""JSON Schema export of the playbook language, for editors (yaml-language-server) and CI."""

from __future__ import annotations

from typing import Any

from engine.schema import MilestoneFile, Playbook

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def playbook_schema() -> dict[str, Any]:
    """The JSON Schema of a playbook file, as the loader accepts it."""
    schema = Playbook.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": "playbook.schema.json", **schema}


def milestones_schema() -> dict[str, Any]:
    """The JSON Schema of ``milestones.yaml``."""
    schema = MilestoneFile.model_json_schema(by_alias=True, mode="validation")
    return {"$schema": SCHEMA_DIALECT, "$id": "milestones.schema.json", **schema}
