"""Every broken playbook under tests/fixtures/invalid/ fails with the diagnostic it declares.

Each fixture's first line is ``# expect: [path:]line:col: message``: the diagnostic must
appear at exactly that line and column (in the fixture itself, or in ``path`` relative to
the fixtures folder, e.g. a template file), with ``message`` as a substring, and the
playbook must produce no plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.cli import main
from engine.project import load_context, load_project

REPO = Path(__file__).resolve().parents[2]
INVALID = REPO / "tests" / "fixtures" / "invalid"
FIXTURES = sorted(p for p in INVALID.glob("*.yaml") if p.name != "milestones.yaml")
EXPECT = re.compile(
    r"^# expect: (?:(?P<path>[^:\s]+):)?(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$"
)
DIAGNOSTIC_LINE = re.compile(r"^(?P<path>[^:\n]+):(?P<line>\d+):(?P<column>\d+): (?P<message>.+)$")


@dataclass(frozen=True)
class Expected:
    path: Path
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


def expected(fixture: Path) -> Expected:
    first = fixture.read_text(encoding="utf-8").splitlines()[0]
    match = EXPECT.match(first)
    assert match, f"{fixture.name}: first line must be '# expect: line:col: message', got {first!r}"
    path = INVALID / match["path"] if match["path"] else fixture
    return Expected(path.resolve(), int(match["line"]), int(match["column"]), match["message"])


def test_there_is_a_fixture_per_error_class() -> None:
    assert len(FIXTURES) >= 22
    assert all(EXPECT.match(f.read_text().splitlines()[0]) for f in FIXTURES)


def test_fixture_project_context_is_itself_valid() -> None:
    """The folder's milestones and its one good template load without a problem, so each
    fixture fails for its own reason and not because of its surroundings."""
    milestones, templates, diags = load_context(INVALID)
    assert diags == []
    assert set(milestones) == {"integration_connected", "first_value"}
    template, template_diags = templates.load("onboarding/welcome")
    assert template is not None
    assert template_diags == []
    assert template.subject == "Welcome to Acme, {{ contact.first_name }}"


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.stem)
def test_fixture_reports_its_diagnostic_and_compiles_to_nothing(fixture: Path) -> None:
    want = expected(fixture)
    project = load_project(INVALID, [fixture])
    shown = "\n".join(map(str, project.diagnostics)) or "(no diagnostics)"
    found = [
        d
        for d in project.errors
        if Path(d.path).resolve() == want.path
        and (d.line, d.column) == (want.line, want.column)
        and want.message in d.message
    ]
    assert found, f"expected error\n  {want}\ngot\n{shown}"
    assert project.plans == {}, f"{fixture.name} must not compile to a plan"
    # every error is about this fixture (or the template it uses), never about its neighbours
    for diag in project.errors:
        where = Path(diag.path).resolve()
        assert where == fixture.resolve() or (INVALID / "templates") in where.parents, str(diag)


def test_validating_the_whole_folder_reports_every_fixture() -> None:
    """All fixtures at once (the folder as a project): nothing is lost or mixed up."""
    project = load_project(INVALID)
    assert project.plans == {}
    located = {(Path(d.path).resolve(), d.line, d.column, d.message) for d in project.errors}
    for fixture in FIXTURES:
        want = expected(fixture)
        assert any(
            (p, line, col) == (want.path, want.line, want.column) and want.message in msg
            for p, line, col, msg in located
        ), f"{fixture.name}: missing {want}"


CLI_CASES = [
    "next_missing_step.yaml",
    "unknown_step_type.yaml",
    "malformed_yaml_indentation.yaml",
    "template_syntax_error.yaml",
    "python_tag.yaml",
]


@pytest.mark.parametrize("name", CLI_CASES)
def test_cli_validate_prints_path_line_col_and_exits_1(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)
    fixture = INVALID / name
    want = expected(fixture)
    result = CliRunner().invoke(main, ["validate", str(fixture.relative_to(REPO))])
    assert result.exit_code == 1, result.output
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert lines, "validate printed no diagnostics"
    for line in lines:
        assert DIAGNOSTIC_LINE.match(line), f"not 'path:line:col: message': {line!r}"
    wanted_path = str(want.path.relative_to(REPO))
    prefix = f"{wanted_path}:{want.line}:{want.column}: "
    assert any(line.startswith(prefix) and want.message in line for line in lines), (
        f"expected a line starting {prefix!r} containing {want.message!r}; got:\n"
        + "\n".join(lines)
    )
    assert "0 playbook(s) compiled" in result.stderr


def test_cli_validate_quiet_prints_only_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = CliRunner().invoke(
        main, ["validate", "-q", "tests/fixtures/invalid/duplicate_step_id.yaml"]
    )
    assert result.exit_code == 1
    assert result.stdout == (
        "tests/fixtures/invalid/duplicate_step_id.yaml:12:9: "
        "duplicate step id 'welcome' (first used at line 7)\n"
    )
    assert "compiled" not in result.stderr
