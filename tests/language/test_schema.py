"""The JSON Schema `playbook schema` prints: valid, committed (never stale), and in step with
the loader on the shipped playbooks and on broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from jsonschema import Draft202012Validator

from engine.cli import main
from engine.project import NOT_PLAYBOOKS

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
SHIPPED = REPO / "playbooks"
VALID = REPO / "tests" / "fixtures" / "valid"
REGENERATE = {
    "playbook": "playbook schema > docs/playbook.schema.json",
    "milestones": "playbook schema --milestones > docs/milestones.schema.json",
}


def printed(*args: str) -> str:
    result = CliRunner().invoke(main, ["schema", *args])
    assert result.exit_code == 0, result.output
    return result.stdout


def validator(kind: str) -> Draft202012Validator:
    return Draft202012Validator(
        json.loads(printed("--milestones") if kind == "milestones" else printed())
    )


def problems(kind: str, data: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in validator(kind).iter_errors(data)
    ]


def playbook_files(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*.yaml") if p.name not in NOT_PLAYBOOKS)


@pytest.mark.parametrize("kind", ["playbook", "milestones"])
def test_printed_schema_is_a_valid_json_schema(kind: str) -> None:
    schema = json.loads(printed("--milestones") if kind == "milestones" else printed())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"{kind}.schema.json"


@pytest.mark.parametrize("kind", ["playbook", "milestones"])
def test_committed_schema_is_up_to_date(kind: str) -> None:
    committed = DOCS / f"{kind}.schema.json"
    current = printed("--milestones") if kind == "milestones" else printed()
    assert committed.is_file(), f"docs/{kind}.schema.json is missing; run `{REGENERATE[kind]}`"
    assert committed.read_text(encoding="utf-8") == current, (
        f"docs/{kind}.schema.json is stale; regenerate it with `{REGENERATE[kind]}`"
    )


def test_shipped_playbooks_point_editors_at_the_schema() -> None:
    if not SHIPPED.is_dir():
        pytest.skip("playbooks/ is not there yet")
    for path in playbook_files(SHIPPED):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=../docs/playbook.schema.json", path.name
        assert (path.parent / "../docs/playbook.schema.json").resolve().is_file()


def test_schema_accepts_every_shipped_playbook_and_milestones_file() -> None:
    if not SHIPPED.is_dir():
        pytest.skip("playbooks/ is not there yet")
    files = playbook_files(SHIPPED)
    assert files, "playbooks/ has no playbooks"
    for path in files:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        assert problems("playbook", data) == [], path.name
    milestones = yaml.safe_load((SHIPPED / "milestones.yaml").read_text(encoding="utf-8"))
    assert problems("milestones", milestones) == []


def test_schema_accepts_the_valid_fixtures() -> None:
    for path in playbook_files(VALID):
        assert problems("playbook", yaml.safe_load(path.read_text())) == [], path.name
    assert problems("milestones", yaml.safe_load((VALID / "milestones.yaml").read_text())) == []


MINIMAL: dict[str, Any] = {
    "playbook": "p",
    "name": "P",
    "steps": [{"id": "hello", "email": {"template": "onboarding/welcome"}}],
}


def with_step(step: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {**MINIMAL, **top, "steps": [step]}


def test_minimal_playbook_and_bare_end_are_accepted() -> None:
    assert problems("playbook", MINIMAL) == []
    assert problems("playbook", with_step({"id": "stop", "end": None})) == []
    assert problems("playbook", with_step({"id": "stop", "end": {"outcome": "won"}})) == []


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({**MINIMAL, "descripton": "typo"}, id="unknown-top-level-key"),
        pytest.param(
            with_step({"id": "x", "email": {"templte": "onboarding/welcome"}}),
            id="unknown-email-key",
        ),
        pytest.param(with_step({"id": "x", "emial": {"template": "a"}}), id="unknown-step-type"),
        pytest.param(
            with_step({"id": "x", "email": {"template": "a"}, "task": {"title": "t"}}),
            id="two-actions",
        ),
        pytest.param(with_step({"id": "x", "next": "end"}), id="no-action"),
        pytest.param(
            with_step({"id": "x", "task": {"title": "t", "priority": "critical"}}),
            id="bad-priority",
        ),
        pytest.param(
            {**MINIMAL, "defaults": {"send_window": {"between": ["9am", "17:00"]}}},
            id="bad-time-of-day",
        ),
        pytest.param({k: v for k, v in MINIMAL.items() if k != "steps"}, id="no-steps"),
        pytest.param({**MINIMAL, "playbook": "Has Spaces"}, id="bad-id"),
    ],
)
def test_schema_rejects_invalid_playbooks(data: dict[str, Any]) -> None:
    assert problems("playbook", data), "the schema accepted an invalid playbook"


def test_schema_rejects_invalid_milestones() -> None:
    assert problems("milestones", {"milestones": {"m": {"event": "x", "cuont": 2}}})
    assert problems("milestones", {"milestones": {"m": {"event": "x", "count": 0}}})
    assert problems("milestones", {"milestone": {}})
