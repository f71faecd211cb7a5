"""The `playbook` command's language subcommands: validate, graph, compile, schema."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.language.plan import CompiledPlan
from engine.project import NOT_PLAYBOOKS, load_project

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "playbooks"
VALID = REPO / "tests" / "fixtures" / "valid"


@pytest.fixture(autouse=True)
def in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)


def test_validate_shipped_playbooks() -> None:
    if not SHIPPED.is_dir():
        pytest.skip("playbooks/ is not there yet")
    count = len([p for p in SHIPPED.glob("*.yaml") if p.name not in NOT_PLAYBOOKS])
    result = CliRunner().invoke(main, ["validate", "playbooks/"])
    assert result.exit_code == 0, result.output
    assert f"{count} playbook(s) compiled, 0 error(s)" in result.stderr
    for line in result.stdout.splitlines():  # anything printed is a located warning
        assert ": warning: " in line, line


def test_validate_defaults_to_playbooks_folder() -> None:
    if not SHIPPED.is_dir():
        pytest.skip("playbooks/ is not there yet")
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 0, result.output
    assert "playbook(s) compiled, 0 error(s)" in result.stderr


def test_validate_without_playbooks_folder_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 2
    assert "no playbooks/ folder here" in result.stderr


def test_validate_valid_fixtures_reports_each_plan() -> None:
    result = CliRunner().invoke(main, ["validate", "tests/fixtures/valid"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "ok tests/fixtures/valid/onboarding.yaml: onboarding (8 steps, version " in (
        result.stderr
    )
    assert "2 playbook(s) compiled, 0 error(s), 0 warning(s)" in result.stderr


def test_validate_piped_keeps_each_report_on_one_line(tmp_path: Path) -> None:
    deep = tmp_path / "a-project-folder-with-a-long-name" / "and-another-long-folder" / "playbooks"
    shutil.copytree(VALID, deep)
    result = CliRunner().invoke(main, ["validate", str(deep)])  # not a terminal
    assert result.exit_code == 0, result.output
    oks = [line for line in result.stderr.splitlines() if line.startswith("ok ")]
    assert len(oks) == 2, result.stderr
    for line in oks:  # longer than 80 columns, and not wrapped
        assert len(line) > 80 and re.fullmatch(r"ok .+ \(\d+ steps, version [0-9a-f]{12}\)", line)


def test_validate_a_missing_path_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["validate", "no/such/file.yaml"])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_validate_mixed_files_reports_errors_and_exits_1() -> None:
    result = CliRunner().invoke(
        main,
        [
            "validate",
            "tests/fixtures/valid/onboarding.yaml",
            "tests/fixtures/invalid/duplicate_step_id.yaml",
        ],
    )
    assert result.exit_code == 1
    assert result.stdout.startswith("tests/fixtures/invalid/duplicate_step_id.yaml:12:9: ")
    assert "1 playbook(s) compiled, 1 error(s)" in result.stderr


def test_compile_prints_the_plan_as_json() -> None:
    result = CliRunner().invoke(main, ["compile", "tests/fixtures/valid/onboarding.yaml"])
    assert result.exit_code == 0, result.output
    plan = CompiledPlan.model_validate_json(result.stdout)
    assert plan == load_project(VALID).plan("onboarding")
    data = json.loads(result.stdout)
    assert data["version"] == plan.version and len(data["version"]) == 64
    assert [s["id"] for s in data["steps"]][:2] == ["welcome", "route"]


def test_compile_by_id_with_root() -> None:
    result = CliRunner().invoke(main, ["compile", "adoption", "--root", "tests/fixtures/valid"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["playbook"] == "adoption"


def test_compile_shipped_playbook_by_id() -> None:
    if not SHIPPED.is_dir():
        pytest.skip("playbooks/ is not there yet")
    result = CliRunner().invoke(main, ["compile", "onboarding"])
    assert result.exit_code == 0, result.output
    assert CompiledPlan.model_validate_json(result.stdout).playbook == "onboarding"


def test_compile_of_a_broken_file_prints_diagnostics_and_exits_1() -> None:
    result = CliRunner().invoke(main, ["compile", "tests/fixtures/invalid/unknown_milestone.yaml"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(
        "tests/fixtures/invalid/unknown_milestone.yaml:9:18: unknown milestone"
    )


def test_graph_prints_mermaid() -> None:
    result = CliRunner().invoke(main, ["graph", "tests/fixtures/valid/onboarding.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowchart TD\n")
    assert 's_route -- "otherwise" --> s_await_integration' in result.stdout


def test_schema_prints_json_schema() -> None:
    playbook = json.loads(CliRunner().invoke(main, ["schema"]).stdout)
    milestones = json.loads(CliRunner().invoke(main, ["schema", "--milestones"]).stdout)
    assert playbook["title"] == "Playbook"
    assert set(playbook["required"]) == {"playbook", "name", "steps"}
    assert milestones["title"] == "MilestoneFile"
    assert milestones["required"] == ["milestones"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        ([], ["validate", "graph", "compile", "schema"]),
        (["validate"], ["--strict", "--quiet", "path:line:col"]),
        (["graph"], ["Mermaid", "--format", "--root"]),
        (["compile"], ["compiled plan (JSON)", "--root"]),
        (["schema"], ["JSON Schema", "--milestones"]),
    ],
)
def test_help(args: list[str], words: list[str]) -> None:
    for flag in ("--help", "-h"):
        result = CliRunner().invoke(main, [*args, flag])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith("Usage: ")
        for word in words:
            assert word in result.stdout, (args, word)
