"""Warnings (an unreachable step, a wait_for that may wait forever) do not fail validation,
are printed as ``path:line:col: warning: ...``, and fail it under ``--strict``."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.project import load_project

MILESTONES = """\
milestones:
  integration_connected:
    event: integration.connected
"""

WARNS = """\
playbook: warns
name: Nudge until connected
trigger:
  on_event: customer.created
steps:
  - id: await_integration
    wait_for:
      milestone: integration_connected
    next: end
  - id: orphan
    task:
      title: "Call {{ customer.name }}"
"""

CLEAN = """\
playbook: clean
name: Nudge until connected
trigger:
  on_event: customer.created
steps:
  - id: await_integration
    wait_for:
      milestone: integration_connected
      timeout: 7d
  - id: call
    task:
      title: "Call {{ customer.name }}"
"""


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "milestones.yaml").write_text(MILESTONES)
    (tmp_path / "warns.yaml").write_text(WARNS)
    (tmp_path / "clean.yaml").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_warnings_are_located_and_do_not_block_the_plan(project_dir: Path) -> None:
    project = load_project(project_dir, [project_dir / "warns.yaml"])
    assert project.errors == []
    assert "warns" in project.plans
    found = {(d.line, d.column, d.severity) for d in project.warnings}
    messages = " | ".join(d.message for d in project.warnings)
    assert (8, 7, "warning") in found, messages  # the wait_for mapping
    assert (10, 9, "warning") in found, messages  # the orphan step's id
    assert "'await_integration' waits for milestone 'integration_connected' with no timeout" in (
        messages
    )
    assert "step 'orphan' is unreachable" in messages


def test_validate_prints_warnings_and_exits_0(project_dir: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "warns.yaml"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "warns.yaml:8:7: warning: step 'await_integration' waits for milestone" in "\n".join(
        lines
    )
    assert any(
        line.startswith("warns.yaml:10:9: warning: step 'orphan' is unreachable") for line in lines
    ), lines
    assert all(": warning: " in line for line in lines), lines
    assert "1 playbook(s) compiled, 0 error(s), 2 warning(s)" in result.stderr


def test_strict_turns_warnings_into_failure(project_dir: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--strict", "warns.yaml"])
    assert result.exit_code == 1
    assert "warns.yaml:10:9: warning: step 'orphan' is unreachable" in result.stdout


def test_strict_passes_a_playbook_without_warnings(project_dir: Path) -> None:
    result = CliRunner().invoke(main, ["validate", "--strict", "clean.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert "1 playbook(s) compiled, 0 error(s), 0 warning(s)" in result.stderr


def test_escalate_after_without_wait_is_a_warning(project_dir: Path) -> None:
    (project_dir / "escalates.yaml").write_text(
        CLEAN.replace("playbook: clean", "playbook: escalates").replace(
            '      title: "Call {{ customer.name }}"\n',
            '      title: "Call {{ customer.name }}"\n      escalate_after: 2d\n',
        )
    )
    result = CliRunner().invoke(main, ["validate", "escalates.yaml"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("escalates.yaml:13:23: warning: 'escalate_after' without")
